"""The entry points the registry and jobs call: webhook payloads, the owner's email and notification."""

import json

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from jobs.choices import EventKind, JobKind, JobStatus
from jobs.models import Job
from models_registry.choices import ReviewStatus, VersionEventKind
from models_registry.models import ModelVersion
from notifications.models import Notification, WebhookDelivery
from notifications.services import job_event_publish, model_version_review_notify, registry_event_publish
from tests.factories import ModelVersionFactory, TrainingJobFactory, UserFactory, ValidationJobFactory
from tests.notifications.factories import WebhookEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return UserFactory(username="olga", email="olga@example.com", first_name="Olga")


@pytest.fixture
def rita():
    return UserFactory(username="rita", first_name="Rita", last_name="Reviewer")


@pytest.fixture
def version(owner):
    return ModelVersionFactory(
        registered_model__owner=owner,
        registered_model__name="pallets",
        number=3,
        metrics={"mAP50": 0.87},
        artifact_sha256="ab" * 32,
    )


def _review(version, reviewer, status, note):
    """What the review service does in its transaction: the conditional update, then publish."""
    ModelVersion.objects.filter(pk=version.pk).update(
        review_status=status, reviewer=reviewer, reviewed_at=timezone.now(), review_note=note
    )
    kind = VersionEventKind.APPROVED if status == ReviewStatus.APPROVED else VersionEventKind.REJECTED
    return registry_event_publish(version=version, kind=kind, actor=reviewer, reason=note)


def test_version_event_payload(owner, rita, version, enqueued, django_capture_on_commit_callbacks):
    endpoint = WebhookEndpointFactory(owner=owner, event_types=["model_version.approved"])

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        (delivery,) = _review(version, rita, ReviewStatus.APPROVED, "beats v2 on every class")

    assert delivery.endpoint == endpoint and delivery.event_type == "model_version.approved"
    payload = delivery.payload
    assert payload["id"] == str(delivery.event_id) and payload["event"] == "model_version.approved"
    assert payload["version"] == {
        "id": version.pk,
        "registered_model": {
            "id": version.registered_model_id,
            "name": "pallets",
            "slug": version.registered_model.slug,
        },
        "number": 3,
        "status": "approved",
        "metrics": {"mAP50": 0.87},
        "artifact_sha256": "ab" * 32,
    }
    assert payload["actor"] == {"id": rita.pk, "username": "rita"}
    assert payload["reason"] == "beats v2 on every class"
    assert payload["occurred_at"].endswith("Z") or "+00:00" in payload["occurred_at"]
    assert json.loads(json.dumps(payload)) == payload


@pytest.mark.parametrize("kind", ["created", "deployed", "undeployed", "archived"])
def test_other_version_events_emit_their_webhook_only(owner, version, kind, enqueued):
    WebhookEndpointFactory(owner=owner, event_types=["*"])

    (delivery,) = registry_event_publish(version=version, kind=kind, actor=owner, reason="deployment 4")

    assert delivery.event_type == f"model_version.{kind}"
    assert delivery.payload["reason"] == "deployment 4"
    assert not Notification.objects.exists() and mail.outbox == []


def test_rejection_emails_and_notifies_the_trainer(
    owner, rita, version, enqueued, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_URL = "http://127.0.0.1:8000"
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _review(version, rita, ReviewStatus.REJECTED, "class 'disc' regressed by 12 points")

    (email,) = mail.outbox
    assert email.to == ["olga@example.com"]
    assert email.subject == "pallets v3 was rejected"
    assert "Rita Reviewer rejected version 3 of pallets" in email.body
    assert "Reason:\nclass 'disc' regressed by 12 points" in email.body
    assert f"http://127.0.0.1:8000/api/v1/model-versions/{version.pk}/" in email.body
    (notification,) = Notification.objects.filter(user=owner)
    assert notification.kind == "model_version.rejected"
    assert notification.title == "pallets v3 was rejected"
    assert notification.body == "class 'disc' regressed by 12 points"
    assert notification.link.endswith(f"/api/v1/model-versions/{version.pk}/")
    assert notification.data["reviewer"] == {"id": rita.pk, "username": "rita"}
    assert notification.read_at is None


def test_approval_email_carries_the_note(owner, rita, version, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _review(version, rita, ReviewStatus.APPROVED, "ship it")

    (email,) = mail.outbox
    assert email.subject == "pallets v3 was approved" and "Note:\nship it" in email.body
    assert Notification.objects.get(user=owner).kind == "model_version.approved"


def test_a_rolled_back_review_tells_nobody(owner, rita, version, enqueued, django_capture_on_commit_callbacks):
    WebhookEndpointFactory(owner=owner)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        _review(version, rita, ReviewStatus.APPROVED, "ship it")
        raise RuntimeError("the review's transaction fails after publishing")

    assert mail.outbox == [] and not Notification.objects.exists() and not WebhookDelivery.objects.exists()
    assert not enqueued.called


def test_an_owner_without_email_still_gets_the_notification(rita, enqueued, django_capture_on_commit_callbacks):
    version = ModelVersionFactory(registered_model__owner=UserFactory(username="noemail", email=""))
    ModelVersion.objects.filter(pk=version.pk).update(review_status=ReviewStatus.APPROVED, reviewer=rita)

    with django_capture_on_commit_callbacks(execute=True):
        notification = model_version_review_notify(version=version)

    assert notification.user.username == "noemail" and mail.outbox == []


def test_a_failing_mail_server_breaks_nothing(
    owner, rita, version, enqueued, django_capture_on_commit_callbacks, settings
):
    settings.EMAIL_BACKEND = "tests.notifications.test_publish.BrokenBackend"

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        _review(version, rita, ReviewStatus.APPROVED, "ok")

    assert Notification.objects.filter(user=owner).count() == 1


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server down")


def test_a_pending_version_is_not_notified(version):
    assert model_version_review_notify(version=version) is None
    assert not Notification.objects.exists()


def test_a_publishing_bug_never_breaks_the_callers_transaction(owner, version, monkeypatch):
    WebhookEndpointFactory(owner=owner)

    def broken(**kwargs):
        raise KeyError("bug")

    monkeypatch.setattr("notifications.services.publish.webhook_event_emit", broken)
    with transaction.atomic():
        assert registry_event_publish(version=version, kind="created") == []
        assert ModelVersion.objects.filter(pk=version.pk).exists(), "the transaction is still usable"


@pytest.mark.parametrize(
    ("status", "kind", "event_type"),
    [
        (JobStatus.COMPLETED, EventKind.COMPLETED, "job.completed"),
        (JobStatus.FAILED, EventKind.FAILED, "job.failed"),
        (JobStatus.CANCELLED, EventKind.CANCELLED, "job.cancelled"),
    ],
)
def test_job_terminal_events(owner, status, kind, event_type, enqueued, django_capture_on_commit_callbacks):
    WebhookEndpointFactory(owner=owner, event_types=["job.completed", "job.failed", "job.cancelled"])
    job = TrainingJobFactory(owner=owner)
    error = "CUDA out of memory" if status == JobStatus.FAILED else ""

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(
            status=status, error=error, metrics={"mAP50": 0.5}, finished_at=timezone.now()
        )
        (delivery,) = job_event_publish(job=job, kind=kind)

    assert delivery.event_type == event_type
    body = delivery.payload["job"]
    assert (body["id"], body["kind"], body["status"], body["error"]) == (job.pk, "train", status, error)
    assert body["metrics"] == {"mAP50": 0.5} and body["model_version"] is None
    assert delivery.payload["link"].endswith(f"/api/v1/training-jobs/{job.pk}/")
    assert enqueued.called


def test_a_completed_training_job_names_its_version(owner, enqueued):
    WebhookEndpointFactory(owner=owner, event_types=["job.completed"])
    job = TrainingJobFactory(owner=owner, status=JobStatus.COMPLETED)
    version = ModelVersionFactory(registered_model__owner=owner, training_job=job)

    (delivery,) = job_event_publish(job=job, kind="completed")

    assert delivery.payload["job"]["model_version"] == version.pk


def test_a_validation_job_names_the_version_it_evaluated(owner, enqueued):
    WebhookEndpointFactory(owner=owner, event_types=["job.completed"])
    job = ValidationJobFactory(owner=owner, status=JobStatus.COMPLETED)

    (delivery,) = job_event_publish(job=job, kind=EventKind.COMPLETED)

    assert delivery.payload["job"]["kind"] == JobKind.VALIDATE
    assert delivery.payload["job"]["model_version"] == job.model_version_id
    assert delivery.payload["link"].endswith(f"/api/v1/validation-jobs/{job.pk}/")


@pytest.mark.parametrize("kind", [EventKind.EPOCH, EventKind.LOG, EventKind.REQUEUED, "queued"])
def test_non_terminal_job_events_publish_nothing(owner, kind, enqueued):
    WebhookEndpointFactory(owner=owner)

    assert job_event_publish(job=TrainingJobFactory(owner=owner), kind=kind) == []
    assert not WebhookDelivery.objects.exists()


def test_an_export_job_links_to_its_version(owner, enqueued):
    WebhookEndpointFactory(owner=owner, event_types=["job.failed"])
    job = ValidationJobFactory(owner=owner, kind=JobKind.EXPORT, config={"format": "onnx"}, status=JobStatus.FAILED)

    (delivery,) = job_event_publish(job=job, kind=EventKind.FAILED)

    assert delivery.payload["job"]["kind"] == "export" and delivery.payload["job"]["config"] == {"format": "onnx"}
    assert delivery.payload["job"]["model_version"] == job.model_version_id
    assert delivery.payload["link"].endswith(f"/api/v1/model-versions/{job.model_version_id}/")
