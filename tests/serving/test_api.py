"""Deployments: only approved versions of one's own models, predict checks, stop."""

from unittest import mock

import pytest
import requests

from models_registry.choices import ReviewStatus, VersionEventKind
from serving.choices import DeploymentStatus
from serving.models import Deployment
from tests import datagen
from tests.factories import DeploymentFactory, ModelVersionFactory

URL = "/api/v1/deployments/"
SERVER_URL = "http://127.0.0.1:9"

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_http():
    """Fails the test if the model server would be called."""
    with mock.patch("serving.predict._session.post", side_effect=AssertionError("no HTTP call expected")) as post:
        yield post


def predict(client, deployment, image, **params):
    return client.post(f"{URL}{deployment.pk}/predict/", {"image": image, **params}, format="multipart")


@pytest.fixture
def active(user):
    return DeploymentFactory(owner=user, status=DeploymentStatus.ACTIVE, server_url=SERVER_URL)


# --- create


@pytest.mark.parametrize("status", [ReviewStatus.PENDING_REVIEW, ReviewStatus.REJECTED, ReviewStatus.ARCHIVED])
def test_deploying_a_version_that_is_not_approved_is_a_conflict(user, api, status, django_capture_on_commit_callbacks):
    version = ModelVersionFactory(registered_model__owner=user, review_status=status)

    with (
        mock.patch("serving.tasks.deployment_start_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api(user).post(URL, {"model_version": version.pk}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"model_version": ["Not approved."]}
    assert not Deployment.objects.exists()
    delay.assert_not_called()


def test_deploying_another_users_version_is_unknown(user, other_user, api):
    version = ModelVersionFactory(registered_model__owner=other_user, review_status=ReviewStatus.APPROVED)

    response = api(user).post(URL, {"model_version": version.pk}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "Unknown model version."
    assert error["fields"] == {"model_version": ["Unknown model version."]}
    assert not Deployment.objects.exists()


def test_reviewer_cannot_deploy_a_version_they_can_only_review(reviewer, user, api):
    version = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.APPROVED)
    reviewer.is_staff = False
    reviewer.save()

    response = api(reviewer).post(URL, {"model_version": version.pk}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Unknown model version."
    assert not Deployment.objects.exists()


def test_deploying_an_approved_version_starts_it_on_commit(user, api, django_capture_on_commit_callbacks):
    version = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.APPROVED)

    with mock.patch("serving.tasks.deployment_start_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = api(user).post(URL, {"model_version": version.pk, "name": "shapes-prod"}, format="json")
        assert response.status_code == 202, response.content
        delay.assert_not_called()
        for callback in callbacks:
            callback()

    body = response.json()
    assert body["status"] == "starting"
    assert body["name"] == "shapes-prod"
    assert body["model_version"] == version.pk
    assert body["artifact_sha256"] == version.artifact_sha256
    delay.assert_called_once_with(body["id"])
    deployment = Deployment.objects.get(pk=body["id"])
    assert deployment.owner == user
    assert deployment.shutdown_token
    assert "shutdown_token" not in body
    assert version.events.get().kind == VersionEventKind.DEPLOYED


# --- predict


@pytest.mark.parametrize(
    "status",
    [DeploymentStatus.STARTING, DeploymentStatus.STOPPING, DeploymentStatus.STOPPED, DeploymentStatus.FAILED],
)
def test_predict_on_a_deployment_that_is_not_active_is_unavailable(user, api, image_upload, no_http, status):
    deployment = DeploymentFactory(owner=user, status=status, server_url=SERVER_URL)

    response = predict(api(user), deployment, image_upload())

    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json()["error"]["code"] == "unavailable"
    no_http.assert_not_called()


def test_predict_on_an_active_row_without_a_server_url_is_unavailable(user, api, image_upload, no_http):
    deployment = DeploymentFactory(owner=user, status=DeploymentStatus.ACTIVE, server_url="")

    response = predict(api(user), deployment, image_upload())

    assert response.status_code == 503
    assert response.has_header("Retry-After")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"<!DOCTYPE html><html></html>", "image.jpg"),
        (b"%PDF-1.7 not an image", "scan.pdf"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "anim.gif"),
    ],
    ids=["html", "pdf", "gif"],
)
def test_predict_with_a_non_image_is_refused_without_calling_the_server(
    user, api, active, image_upload, no_http, data, name
):
    response = predict(api(user), active, image_upload(data, name=name))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_an_image"
    no_http.assert_not_called()


def test_predict_with_an_image_over_the_pixel_limit_is_refused(user, api, active, image_upload, no_http, settings):
    settings.IMAGE_MAX_PIXELS = 64 * 64 - 1

    response = predict(api(user), active, image_upload(datagen.sample_image_bytes(size=64)))

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    no_http.assert_not_called()


def test_predict_forwards_a_valid_image_to_the_model_server(user, api, active, image_upload):
    image = datagen.sample_image_bytes()
    answer = mock.Mock(status_code=200)
    answer.json.return_value = {"detections": [{"class": "disc", "confidence": 0.9}]}

    with mock.patch("serving.predict._session.post", return_value=answer) as post:
        response = predict(api(user), active, image_upload(image), conf=0.4, max_det=5)

    assert response.status_code == 200, response.content
    assert response.json() == {
        "detections": [{"class": "disc", "confidence": 0.9}],
        "deployment": active.pk,
        "model_version": active.model_version_id,
    }
    post.assert_called_once()
    args, kwargs = post.call_args
    assert args == (f"{SERVER_URL}/predict",)
    assert kwargs["data"] == image
    assert kwargs["params"] == {"conf": 0.4, "max_det": 5}


def test_predict_when_the_model_server_is_down_is_unavailable(user, api, active, image_upload):
    with mock.patch("serving.predict._session.post", side_effect=requests.ConnectionError("refused")):
        response = predict(api(user), active, image_upload())

    assert response.status_code == 503
    assert response["Retry-After"] == "30"


def test_another_users_deployment_is_not_found(other_user, api, active, image_upload, no_http):
    client = api(other_user)

    assert client.get(f"{URL}{active.pk}/").status_code == 404
    assert predict(client, active, image_upload()).status_code == 404
    assert client.post(f"{URL}{active.pk}/stop/").status_code == 404
    assert Deployment.objects.get(pk=active.pk).status == DeploymentStatus.ACTIVE
    no_http.assert_not_called()


# --- stop


def test_stopping_an_active_deployment(user, api, active, django_capture_on_commit_callbacks):
    with (
        mock.patch("serving.tasks.deployment_stop_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api(user).post(f"{URL}{active.pk}/stop/")

    assert response.status_code == 202
    assert response.json()["status"] == "stopping"
    delay.assert_called_once_with(active.pk)
    assert Deployment.objects.get(pk=active.pk).status == DeploymentStatus.STOPPING
    assert active.model_version.events.get().kind == VersionEventKind.UNDEPLOYED


@pytest.mark.parametrize("status", [DeploymentStatus.STOPPING, DeploymentStatus.STOPPED, DeploymentStatus.FAILED])
def test_stopping_a_deployment_that_is_not_running_is_a_conflict(user, api, status):
    deployment = DeploymentFactory(owner=user, status=status)

    response = api(user).post(f"{URL}{deployment.pk}/stop/")

    assert response.status_code == 409
    assert Deployment.objects.get(pk=deployment.pk).status == status
