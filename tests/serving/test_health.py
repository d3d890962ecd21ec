"""The beat task that fails active deployments whose model server died."""

from unittest import mock

import pytest
import requests

from serving import runner
from serving.choices import DeploymentStatus
from serving.models import Deployment
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


def health(sha256):
    response = mock.Mock()
    response.json.return_value = {"status": "ok", "sha256": sha256}
    return response


@pytest.fixture
def active(user):
    return DeploymentFactory(owner=user, status=DeploymentStatus.ACTIVE, server_url="http://127.0.0.1:9")


def test_a_healthy_server_is_left_alone(active):
    with mock.patch("serving.runner.requests.get", return_value=health(active.artifact_sha256)):
        assert runner.deployments_health_check() == []

    assert Deployment.objects.get(pk=active.pk).status == DeploymentStatus.ACTIVE


def test_a_server_that_refuses_connections_fails_its_deployment(active):
    with mock.patch("serving.runner.requests.get", side_effect=requests.ConnectionError("refused")):
        assert runner.deployments_health_check() == [active.pk]

    active.refresh_from_db()
    assert active.status == DeploymentStatus.FAILED
    assert "stopped answering" in active.error and active.stopped_at is not None


def test_a_server_with_another_file_fails_its_deployment(active):
    with mock.patch("serving.runner.requests.get", return_value=health("f" * 64)):
        assert runner.deployments_health_check() == [active.pk]

    assert "not the pinned one" in Deployment.objects.get(pk=active.pk).error


def test_a_slow_server_is_not_failed(active):
    with mock.patch("serving.runner.requests.get", side_effect=requests.Timeout("slow")):
        assert runner.deployments_health_check() == []

    assert Deployment.objects.get(pk=active.pk).status == DeploymentStatus.ACTIVE


def test_only_active_deployments_are_checked(user):
    DeploymentFactory(owner=user, status=DeploymentStatus.STOPPING, server_url="http://127.0.0.1:9")

    with mock.patch("serving.runner.requests.get") as get:
        assert runner.deployments_health_check() == []

    get.assert_not_called()


def test_the_check_runs_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["health-check-deployments"]

    assert entry["task"] == "serving.tasks.deployments_health_check_task"


def test_a_deployment_stopped_during_the_check_ends_stopped_not_failed(active):
    def stopped_meanwhile(*args, **kwargs):
        Deployment.objects.filter(pk=active.pk).update(status=DeploymentStatus.STOPPING)
        raise requests.ConnectionError("refused")

    with mock.patch("serving.runner.requests.get", side_effect=stopped_meanwhile):
        assert runner.deployments_health_check() == []

    assert Deployment.objects.get(pk=active.pk).status == DeploymentStatus.STOPPING
