"""Endpoints: a stable slug per registered model, switch, rollback, predict with retry."""

from unittest import mock

import pytest
import requests

from models_registry.choices import ReviewStatus, VersionEventKind
from portal.errors import ConflictError
from serving import runner, services
from serving.choices import DeploymentStatus
from serving.models import Deployment, Endpoint
from tests.factories import DeploymentFactory, ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db

OLD_URL = "http://127.0.0.1:9"
NEW_URL = "http://127.0.0.1:10"


def ok():
    answer = mock.Mock(status_code=200)
    answer.json.return_value = {"predictions": [], "inference_time_ms": 1.0}
    return answer


def approved(model, **kwargs):
    return ModelVersionFactory(registered_model=model, review_status=ReviewStatus.APPROVED, **kwargs)


@pytest.fixture
def model(user):
    return RegisteredModelFactory(owner=user, slug="alice-shapes")


@pytest.fixture
def no_tasks():
    with (
        mock.patch("serving.tasks.deployment_start_task.delay") as start,
        mock.patch("serving.tasks.deployment_stop_task.delay") as stop,
    ):
        yield start, stop


def deploy_active(user, version, url, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deployment = services.deployment_create(owner=user, model_version=version)
        assert services.deployment_mark_active(deployment_id=deployment.pk, server_url=url, host="node", pid=1)
    deployment.refresh_from_db()
    return deployment


@pytest.fixture
def serving_endpoint(user, model, no_tasks, django_capture_on_commit_callbacks):
    """An endpoint that serves version 1 and served nothing before."""
    deployment = deploy_active(user, approved(model, number=1), OLD_URL, django_capture_on_commit_callbacks)
    return deployment.endpoint


# --- services


def test_deploying_creates_the_models_endpoint_named_by_its_slug(user, model, no_tasks):
    deployment = services.deployment_create(owner=user, model_version=approved(model))

    endpoint = Endpoint.objects.get()
    assert endpoint.slug == "alice-shapes" and endpoint.owner == user
    assert deployment.endpoint == endpoint
    assert endpoint.current_deployment is None  # only once it is healthy


def test_activation_points_the_endpoint_and_stops_the_replaced_deployment(
    user, model, serving_endpoint, no_tasks, django_capture_on_commit_callbacks
):
    old = serving_endpoint.current_deployment
    new_version = approved(model, number=2)

    new = deploy_active(user, new_version, NEW_URL, django_capture_on_commit_callbacks)

    serving_endpoint.refresh_from_db()
    old.refresh_from_db()
    assert serving_endpoint.current_deployment == new and new.status == DeploymentStatus.ACTIVE
    assert old.status == DeploymentStatus.STOPPING
    no_tasks[1].assert_called_once_with(old.pk)
    assert old.model_version.events.filter(kind=VersionEventKind.UNDEPLOYED).exists()


def test_a_failed_start_leaves_the_endpoint_on_its_current_deployment(user, model, serving_endpoint, no_tasks):
    old = serving_endpoint.current_deployment
    new = services.endpoint_switch(endpoint=serving_endpoint, model_version=approved(model, number=2), actor=user)

    services.deployment_mark_failed(deployment_id=new.pk, error="did not load")

    serving_endpoint.refresh_from_db()
    assert serving_endpoint.current_deployment == old
    assert Deployment.objects.get(pk=old.pk).status == DeploymentStatus.ACTIVE


def test_switching_while_a_switch_is_starting_is_a_conflict(user, model, serving_endpoint, no_tasks):
    services.endpoint_switch(endpoint=serving_endpoint, model_version=approved(model, number=2), actor=user)

    with pytest.raises(ConflictError, match="already switching"):
        services.endpoint_switch(endpoint=serving_endpoint, model_version=approved(model, number=3), actor=user)


def test_switching_to_the_version_already_served_is_a_conflict(user, serving_endpoint, no_tasks):
    with pytest.raises(ConflictError, match="already serves"):
        services.endpoint_switch(
            endpoint=serving_endpoint, model_version=serving_endpoint.current_deployment.model_version, actor=user
        )


def test_rollback_switches_to_the_previously_served_approved_version(
    user, model, serving_endpoint, no_tasks, django_capture_on_commit_callbacks
):
    first = serving_endpoint.current_deployment.model_version
    deploy_active(user, approved(model, number=2), NEW_URL, django_capture_on_commit_callbacks)
    serving_endpoint.refresh_from_db()

    rollback = services.endpoint_rollback(endpoint=serving_endpoint, actor=user)

    assert rollback.model_version == first and rollback.status == DeploymentStatus.STARTING


def test_rollback_skips_versions_that_are_no_longer_approved(
    user, model, serving_endpoint, no_tasks, django_capture_on_commit_callbacks
):
    first = serving_endpoint.current_deployment.model_version
    deploy_active(user, approved(model, number=2), NEW_URL, django_capture_on_commit_callbacks)
    first.review_status = ReviewStatus.ARCHIVED
    first.save()
    serving_endpoint.refresh_from_db()

    with pytest.raises(ConflictError, match="no earlier approved version"):
        services.endpoint_rollback(endpoint=serving_endpoint, actor=user)


def test_rollback_without_history_is_a_conflict(user, serving_endpoint, no_tasks):
    with pytest.raises(ConflictError):
        services.endpoint_rollback(endpoint=serving_endpoint, actor=user)


def test_stopping_a_replaced_server_waits_for_the_drain_period(user, model, settings):
    settings.SERVING_DRAIN_SECONDS = 0.25
    endpoint = Endpoint.objects.create(registered_model=model, owner=user, slug=model.slug)
    new = DeploymentFactory(owner=user, endpoint=endpoint, status=DeploymentStatus.ACTIVE, server_url=NEW_URL)
    old = DeploymentFactory(owner=user, endpoint=endpoint, status=DeploymentStatus.STOPPING, server_url=OLD_URL)
    endpoint.current_deployment = new
    endpoint.save()

    with mock.patch("serving.runner.time.sleep") as sleep, mock.patch("serving.runner.requests.post") as post:
        runner.deployment_stop(old.pk)

    sleep.assert_called_once_with(0.25)
    assert post.call_args.args == (f"{OLD_URL}/shutdown",)
    assert Deployment.objects.get(pk=old.pk).status == DeploymentStatus.STOPPED


# --- API


def endpoint_url(endpoint, action=""):
    return f"/api/v1/endpoints/{endpoint.slug}/{action}"


def test_endpoint_detail_shows_the_current_deployment(user, api, serving_endpoint):
    body = api(user).get(endpoint_url(serving_endpoint)).json()

    assert body["slug"] == "alice-shapes"
    assert body["status"] == "active"
    assert "server_url" not in body["current_deployment"]
    assert body["current_deployment"]["id"] == serving_endpoint.current_deployment_id


def test_endpoint_predict_goes_to_the_current_deployment(user, api, serving_endpoint, image_upload):
    with mock.patch("serving.predict._session.post", return_value=ok()) as post:
        response = api(user).post(
            endpoint_url(serving_endpoint, "predict/"),
            {"image": image_upload(), "classes": [1], "iou": 0.5},
            format="multipart",
        )

    assert response.status_code == 200, response.content
    assert response.json()["model_version"] == serving_endpoint.current_deployment.model_version_id
    assert post.call_args.args == (f"{OLD_URL}/predict",)
    assert post.call_args.kwargs["params"] == {"iou": 0.5, "classes": "1"}


def test_endpoint_predict_retries_once_on_the_new_server_when_the_old_went_away(
    user, model, api, serving_endpoint, image_upload, no_tasks, django_capture_on_commit_callbacks
):
    new_version = approved(model, number=2)
    switch_mid_request = []

    def post(url, **kwargs):
        if url.startswith(OLD_URL):
            # The switch commits between the portal's lookup and its request; the old server is gone.
            switch_mid_request.append(deploy_active(user, new_version, NEW_URL, django_capture_on_commit_callbacks))
            raise requests.ConnectionError("connection reset")
        return ok()

    with mock.patch("serving.predict._session.post", side_effect=post) as session_post:
        response = api(user).post(endpoint_url(serving_endpoint, "predict/"), {"image": image_upload()})

    assert response.status_code == 200, response.content
    assert response.json()["model_version"] == new_version.pk
    assert [call.args[0] for call in session_post.call_args_list] == [f"{OLD_URL}/predict", f"{NEW_URL}/predict"]


def test_endpoint_predict_retries_only_once(user, api, serving_endpoint, image_upload):
    with mock.patch("serving.predict._session.post", side_effect=requests.ConnectionError("down")) as post:
        response = api(user).post(endpoint_url(serving_endpoint, "predict/"), {"image": image_upload()})

    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert post.call_count == 2


def test_a_stopped_endpoint_answers_503_with_retry_after(user, api, serving_endpoint, image_upload):
    Deployment.objects.filter(pk=serving_endpoint.current_deployment_id).update(status=DeploymentStatus.STOPPED)

    with mock.patch("serving.predict._session.post") as post:
        response = api(user).post(endpoint_url(serving_endpoint, "predict/"), {"image": image_upload()})

    assert response.status_code == 503 and response["Retry-After"] == "30"
    post.assert_not_called()


def test_another_users_endpoint_is_not_found(other_user, api, serving_endpoint, image_upload):
    client = api(other_user)

    assert client.get(endpoint_url(serving_endpoint)).status_code == 404
    assert client.get("/api/v1/endpoints/").json()["count"] == 0
    assert client.post(endpoint_url(serving_endpoint, "predict/"), {"image": image_upload()}).status_code == 404
    assert client.post(endpoint_url(serving_endpoint, "rollback/")).status_code == 404
    assert client.post(endpoint_url(serving_endpoint, "stop/")).status_code == 404


def test_switch_through_the_api(user, model, api, serving_endpoint, no_tasks, django_capture_on_commit_callbacks):
    version = approved(model, number=2)

    with django_capture_on_commit_callbacks(execute=True):
        response = api(user).post(endpoint_url(serving_endpoint, "switch/"), {"model_version": version.pk})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["endpoint"] == "alice-shapes" and body["status"] == "starting"
    no_tasks[0].assert_called_with(body["id"])


def test_switch_to_a_version_that_is_not_approved_is_a_conflict(user, model, api, serving_endpoint, no_tasks):
    version = ModelVersionFactory(registered_model=model, review_status=ReviewStatus.PENDING_REVIEW)

    response = api(user).post(endpoint_url(serving_endpoint, "switch/"), {"model_version": version.pk})

    assert response.status_code == 409
    assert Deployment.objects.count() == 1


def test_switch_to_a_version_of_another_model_is_refused(user, api, serving_endpoint, no_tasks):
    version = approved(RegisteredModelFactory(owner=user))

    response = api(user).post(endpoint_url(serving_endpoint, "switch/"), {"model_version": version.pk})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"model_version": ["Not a version of this model."]}


def test_rollback_and_stop_through_the_api(
    user, model, api, serving_endpoint, no_tasks, django_capture_on_commit_callbacks
):
    first = serving_endpoint.current_deployment.model_version
    current = deploy_active(user, approved(model, number=2), NEW_URL, django_capture_on_commit_callbacks)

    response = api(user).post(endpoint_url(serving_endpoint, "rollback/"))
    assert response.status_code == 202 and response.json()["model_version"] == first.pk

    response = api(user).post(endpoint_url(serving_endpoint, "stop/"))
    assert response.status_code == 202 and response.json()["id"] == current.pk
    assert Deployment.objects.get(pk=current.pk).status == DeploymentStatus.STOPPING
