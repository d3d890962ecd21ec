"""The registry, jobs and serving publish through notifications: the owner is told, webhooks go out.

These pass once the lead's hooks are in (models_registry.services.model_version_record_event and
jobs.events.job_event_record call the publishers; see docs/notifications.md).
"""

import pytest
from django.core import mail

from jobs.services import job_cancel
from models_registry.services import model_version_create_from_job
from notifications.models import Notification, WebhookDelivery
from serving.services import deployment_create, deployment_stop
from tests.factories import ModelVersionFactory, TrainingJobFactory, UserFactory
from tests.notifications.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return UserFactory(username="olga", email="olga@example.com")


def test_a_rejection_through_the_api_tells_the_owner_and_the_webhook(
    owner, reviewer, api, enqueued, django_capture_on_commit_callbacks
):
    endpoint = WebhookEndpointFactory(owner=owner, event_types=["model_version.rejected"])
    version = ModelVersionFactory(registered_model__owner=owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = api(reviewer).post(
            f"/api/v1/model-versions/{version.pk}/reject/", {"reason": "disc recall fell"}, format="json"
        )

    assert response.status_code == 200, response.content
    (email,) = mail.outbox
    assert email.to == ["olga@example.com"] and "disc recall fell" in email.body
    assert Notification.objects.get(user=owner).kind == "model_version.rejected"
    (delivery,) = WebhookDelivery.objects.filter(endpoint=endpoint)
    assert delivery.payload["version"]["status"] == "rejected"
    assert delivery.payload["actor"]["username"] == reviewer.username
    assert delivery.payload["reason"] == "disc recall fell"


def test_a_registered_version_and_its_deployment_emit_their_events(owner, enqueued, django_capture_on_commit_callbacks):
    WebhookEndpointFactory(owner=owner, event_types=["*"])
    job = TrainingJobFactory(owner=owner)

    version = model_version_create_from_job(
        job=job, artifact_name=f"jobs/{job.pk}/best.pt", artifact_sha256="c" * 64, artifact_size=3, metrics={}
    )
    version.review_status = "approved"
    version.save(update_fields=["review_status"])
    with django_capture_on_commit_callbacks(execute=False):
        deployment = deployment_create(owner=owner, model_version=version, name="edge")
        deployment.status = "active"
        deployment.save(update_fields=["status"])
        deployment_stop(deployment=deployment)

    assert list(WebhookDelivery.objects.order_by("id").values_list("event_type", flat=True)) == [
        "model_version.created",
        "model_version.deployed",
        "model_version.undeployed",
    ]


def test_a_cancelled_job_emits_job_cancelled(owner, enqueued):
    WebhookEndpointFactory(owner=owner, event_types=["job.cancelled"])

    job_cancel(job=TrainingJobFactory(owner=owner))

    (delivery,) = WebhookDelivery.objects.all()
    assert delivery.event_type == "job.cancelled" and delivery.payload["job"]["status"] == "cancelled"
