"""Every list is scoped to its owner (staff see everything), and anonymous requests are refused."""

import json

import pytest
from rest_framework.authtoken.models import Token

from datasets.models import Dataset
from jobs.models import Job
from models_registry.models import ModelVersion
from serving.models import Deployment
from tests.factories import DatasetFactory, DeploymentFactory, ModelVersionFactory, TrainingJobFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    pytest.param("/api/v1/datasets/", Dataset, "owner", id="datasets"),
    pytest.param("/api/v1/training-jobs/", Job, "owner", id="training-jobs"),
    pytest.param("/api/v1/model-versions/", ModelVersion, "created_by", id="model-versions"),
    pytest.param("/api/v1/deployments/", Deployment, "owner", id="deployments"),
]


@pytest.fixture
def rows(user, other_user):
    """Each user owns a data set, a job, a version and a deployment (and what those need)."""
    for owner in (user, other_user):
        DatasetFactory(owner=owner)
        TrainingJobFactory(owner=owner)
        ModelVersionFactory(registered_model__owner=owner)
        DeploymentFactory(owner=owner)


def listed_ids(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == len(body["results"])
    return {row["id"] for row in body["results"]}


@pytest.mark.parametrize(("url", "model", "owner_field"), ENDPOINTS)
def test_a_user_sees_only_their_own_rows(rows, user, other_user, api, url, model, owner_field):
    for who in (user, other_user):
        own = set(model.objects.filter(**{owner_field: who}).values_list("pk", flat=True))
        assert own, "the fixture must give each user rows"
        assert listed_ids(api(who), url) == own
    assert model.objects.count() > len(own)


@pytest.mark.parametrize(("url", "model", "owner_field"), ENDPOINTS)
def test_staff_see_every_row(rows, staff_user, api, url, model, owner_field):
    every = set(model.objects.values_list("pk", flat=True))

    assert listed_ids(api(staff_user), url) == every
    assert len({getattr(row, f"{owner_field}_id") for row in model.objects.all()}) >= 2


@pytest.mark.parametrize(("url", "model", "owner_field"), ENDPOINTS)
def test_a_user_cannot_fetch_another_users_row(rows, user, other_user, api, url, model, owner_field):
    theirs = model.objects.filter(**{owner_field: other_user}).first()

    response = api(user).get(f"{url}{theirs.pk}/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("url", "model", "owner_field"), ENDPOINTS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_requests_are_refused_with_a_json_error(api, db, url, model, owner_field, method):
    response = getattr(api(None), method)(url)

    assert response.status_code in (401, 403)
    error = response.json()["error"]
    assert error["code"] == "not_authenticated"
    assert error["message"]
    assert error["fields"] == {}


def test_a_bad_api_token_is_refused_with_a_json_error(api, db):
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    response = client.get("/api/v1/datasets/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_an_api_token_authenticates_as_its_user(rows, user, api):
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")

    response = client.get("/api/v1/datasets/")

    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == set(
        Dataset.objects.filter(owner=user).values_list("pk", flat=True)
    )


def test_the_openapi_schema_lists_the_api(api, db):
    response = api(None).get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    document = json.loads(response.content)
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/api/v1/datasets/", "/api/v1/training-jobs/", "/api/v1/model-versions/", "/api/v1/deployments/"):
        assert path in paths
    assert not any("callbacks" in path for path in paths)


def test_the_default_schema_is_yaml_containing_the_datasets_path(api, db):
    response = api(None).get("/api/v1/schema/")

    assert response.status_code == 200
    assert b"/api/v1/datasets/:" in response.content


def test_api_docs_page_works_offline(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr.net" not in html and "unpkg.com" not in html
