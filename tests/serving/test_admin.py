"""Serving's admin pages open for operators; endpoints and results are machine-written."""

import pytest

from serving.models import Endpoint, InferenceResult
from tests.factories import DeploymentFactory, TrainingJobFactory, UserFactory

PAGES = ["serving/deployment", "serving/endpoint", "serving/inferenceresult"]


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def rows(user):
    deployment = DeploymentFactory(owner=user)
    model = deployment.model_version.registered_model
    endpoint = Endpoint.objects.create(
        registered_model=model, owner=user, slug=model.slug, current_deployment=deployment
    )
    result = InferenceResult.objects.create(job=TrainingJobFactory(owner=user), index=0, name="a.jpg", image="x.jpg")
    return endpoint, result


@pytest.mark.parametrize("page", PAGES)
def test_changelist_and_change_pages_open_and_add_is_refused(client, superuser, rows, page):
    client.force_login(superuser)
    endpoint, result = rows
    key = {"serving/endpoint": endpoint.pk, "serving/inferenceresult": result.pk}.get(page)

    assert client.get(f"/admin/{page}/").status_code == 200
    assert client.get(f"/admin/{page}/add/").status_code == 403
    if key is not None:
        assert client.get(f"/admin/{page}/{key}/change/").status_code == 200
