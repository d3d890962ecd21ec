"""Operators' admin pages open, and workflow objects cannot be added by hand."""

import pytest

from tests.factories import DatasetFactory, ModelVersionFactory, TrainingJobFactory, UserFactory

PAGES = ["datasets/dataset", "jobs/job", "models_registry/modelversion", "serving/deployment"]


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.mark.parametrize("page", PAGES)
def test_changelist_opens_and_add_is_refused(client, superuser, page):
    DatasetFactory()
    TrainingJobFactory()
    ModelVersionFactory()
    client.force_login(superuser)
    assert client.get(f"/admin/{page}/").status_code == 200
    assert client.get(f"/admin/{page}/add/").status_code == 403


def test_job_change_page_hides_the_callback_secret(client, superuser):
    job = TrainingJobFactory(callback_token_hash="f" * 64)
    client.force_login(superuser)
    response = client.get(f"/admin/jobs/job/{job.pk}/change/")
    assert response.status_code == 200
    assert "f" * 64 not in response.content.decode()
