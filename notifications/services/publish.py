"""The entry points the registry, jobs and serving call when something happens worth telling.

Both publishers write their rows in the caller's transaction (inside a savepoint) and send
anything external after commit. A failure here is logged and never undoes the caller's change:
an approval must not fail because a webhook could not be queued.
"""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from jobs.choices import JobKind
from models_registry.choices import ReviewStatus, VersionEventKind
from notifications.choices import NotificationKind, WebhookEventType
from notifications.services.inbox import notification_create
from notifications.services.webhooks import webhook_event_emit

logger = logging.getLogger(__name__)

JOB_EVENT_TYPES = {
    "completed": WebhookEventType.JOB_COMPLETED,
    "failed": WebhookEventType.JOB_FAILED,
    "cancelled": WebhookEventType.JOB_CANCELLED,
}
REVIEW_NOTIFICATION_KINDS = {
    ReviewStatus.APPROVED: NotificationKind.MODEL_VERSION_APPROVED,
    ReviewStatus.REJECTED: NotificationKind.MODEL_VERSION_REJECTED,
}


def _portal_link(url_name, pk):
    return settings.PORTAL_URL.rstrip("/") + reverse(url_name, kwargs={"pk": pk})


def _user_ref(user):
    return None if user is None else {"id": user.pk, "username": user.get_username()}


def _display_name(user):
    return (user.get_full_name() or user.get_username()) if user else "A reviewer"


def model_version_payload(version):
    return {
        "id": version.pk,
        "registered_model": {
            "id": version.registered_model_id,
            "name": version.registered_model.name,
            "slug": version.registered_model.slug,
        },
        "number": version.number,
        "status": version.review_status,
        "metrics": version.metrics,
        "artifact_sha256": version.artifact_sha256,
    }


def _version_fresh(version):
    # The caller's instance may predate its own conditional update: read the row as committed-to-be.
    return type(version).objects.select_related("registered_model__owner", "created_by", "reviewer").get(pk=version.pk)


def model_version_review_notify(*, version):
    """Tell the trainer of a version that it was approved or rejected: a notification and an email.

    The notification row is written now and pushed live after commit; the email is sent after
    commit too, so a rolled-back review tells nobody. Returns the notification, or None when the
    version is not approved or rejected.
    """
    version = _version_fresh(version)
    kind = REVIEW_NOTIFICATION_KINDS.get(version.review_status)
    if kind is None:
        return None
    owner = version.created_by
    decision = version.get_review_status_display().lower()
    link = _portal_link("model-version-detail", version.pk)
    context = {
        "version": version,
        "decision": decision,
        "rejected": version.review_status == ReviewStatus.REJECTED,
        "owner_name": _display_name(owner),
        "reviewer_name": _display_name(version.reviewer),
        "link": link,
    }
    subject = " ".join(render_to_string("notifications/email/review_decision_subject.txt", context).split())
    body = render_to_string("notifications/email/review_decision_body.txt", context)
    notification = notification_create(
        user=owner,
        kind=kind,
        title=subject,
        body=version.review_note,
        link=link,
        data={
            "model_version": version.pk,
            "registered_model": version.registered_model_id,
            "reviewer": _user_ref(version.reviewer),
            "decision": version.review_status,
        },
    )
    if owner.email:
        transaction.on_commit(lambda: _email_send(subject=subject, body=body, to=owner.email, version_id=version.pk))
    return notification


def _email_send(*, subject, body, to, version_id):
    try:
        send_mail(subject, body, None, [to])
    except Exception:  # the notification row still tells the owner
        logger.warning("could not email the review of version %s to %s", version_id, to, exc_info=True)


def registry_event_publish(*, version, kind, actor=None, reason=""):
    """Publish a model version event: the `model_version.<kind>` webhook, and for a review the owner's
    notification and email.

    Call it in the same transaction that records the version's event, after the version's row
    changed. Returns the webhook deliveries queued.
    """
    kind = VersionEventKind(kind)
    try:
        with transaction.atomic():
            version = _version_fresh(version)
            deliveries = webhook_event_emit(
                owner=version.registered_model.owner,
                event_type=f"model_version.{kind.value}",
                payload={
                    "version": model_version_payload(version),
                    "actor": _user_ref(actor),
                    "reason": reason,
                    "occurred_at": timezone.now(),
                },
            )
            if kind in (VersionEventKind.APPROVED, VersionEventKind.REJECTED):
                model_version_review_notify(version=version)
            return deliveries
    except Exception:
        logger.exception("could not publish the %s event of model version %s", kind.value, version.pk)
        return []


def job_payload(job):
    if job.kind == JobKind.TRAIN:
        trained = getattr(job, "trained_version", None)  # reverse one-to-one: None until registered
        model_version_id = trained.pk if trained else None
    else:
        model_version_id = job.model_version_id
    return {
        "id": job.pk,
        "kind": job.kind,
        "status": job.status,
        "config": job.config,
        "dataset": job.dataset_id,
        "metrics": job.metrics,
        "error": job.error,
        "model_version": model_version_id,
        "attempt": job.attempt,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def job_event_publish(*, job, kind):
    """Publish `job.completed`, `job.failed` or `job.cancelled` for a job that reached that state.

    `kind` is the job event kind (`completed`, `failed`, `cancelled`; other kinds publish nothing,
    so it can be called for every event). Call it in the transaction that finishes the job, after
    the version of a training job is registered. Returns the webhook deliveries queued.
    """
    event_type = JOB_EVENT_TYPES.get(str(kind).removeprefix("job."))
    if event_type is None:
        return []
    try:
        with transaction.atomic():
            job = type(job).objects.select_related("owner").get(pk=job.pk)
            return webhook_event_emit(
                owner=job.owner,
                event_type=event_type,
                payload={"job": job_payload(job), "link": _job_link(job)},
            )
    except Exception:
        logger.exception("could not publish the %s event of job %s", event_type, job.pk)
        return []


def _job_link(job):
    if job.kind == JobKind.TRAIN:
        return _portal_link("training-job-detail", job.pk)
    if job.kind == JobKind.VALIDATE:
        return _portal_link("validation-job-detail", job.pk)
    # Other kinds (exports) have no page of their own: point at the version they worked on.
    return _portal_link("model-version-detail", job.model_version_id) if job.model_version_id else ""
