"""Writes for the registry: versions from training jobs, and the review gate."""

import hashlib

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from models_registry.choices import ReviewStatus, VersionEventKind
from models_registry.models import ModelVersion, ModelVersionEvent, RegisteredModel
from portal.errors import ApplicationError, ConflictError, ForbiddenError

APPROVE_PERMISSION = "models_registry.approve_modelversion"


def registered_model_get_or_create(*, owner, name, task, classes):
    model = RegisteredModel.objects.filter(owner=owner, name=name).first()
    if model:
        return model
    base = slugify(f"{owner.username}-{name}")[:180] or "model"
    slug, suffix = base, 1
    while RegisteredModel.objects.filter(slug=slug).exists():
        suffix += 1
        slug = f"{base}-{suffix}"
    try:
        with transaction.atomic():
            return RegisteredModel.objects.create(owner=owner, name=name, slug=slug, task=task, classes=classes)
    except IntegrityError:
        return RegisteredModel.objects.get(owner=owner, name=name)


def model_version_create_from_job(*, job, artifact_name, artifact_sha256, artifact_size, metrics):
    """Register the best checkpoint of a finished training job as a version pending review."""
    dataset = job.dataset
    name = job.config.get("registered_model") or f"{dataset.name} {job.config.get('model', 'yolo')}"
    registered = registered_model_get_or_create(owner=job.owner, name=name, task=dataset.task, classes=dataset.classes)
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().filter(pk=registered.pk).first()
        number = (registered.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        version = ModelVersion.objects.create(
            registered_model=registered,
            number=number,
            training_job=job,
            dataset=dataset,
            created_by=job.owner,
            metrics=metrics,
            artifact=artifact_name,
            artifact_sha256=artifact_sha256,
            artifact_size=artifact_size,
        )
        model_version_record_event(version=version, kind=VersionEventKind.CREATED, actor=job.owner)
    return version


def _check_reviewer(version, reviewer):
    if not reviewer.has_perm(APPROVE_PERMISSION):
        raise ForbiddenError("Only reviewers may approve or reject model versions.", code="not_reviewer")
    if settings.REVIEW_SEPARATION_OF_DUTIES and version.created_by_id == reviewer.pk:
        raise ForbiddenError("You cannot review a model version you trained.", code="own_model")


def _review(version, reviewer, target, note, kind):
    _check_reviewer(version, reviewer)
    with transaction.atomic():
        updated = ModelVersion.objects.filter(pk=version.pk, review_status=ReviewStatus.PENDING_REVIEW).update(
            review_status=target, reviewer=reviewer, reviewed_at=timezone.now(), review_note=note
        )
        if not updated:
            version.refresh_from_db()
            raise ConflictError(
                f"Version {version} is {version.review_status}; only a pending version can be reviewed."
            )
        model_version_record_event(version=version, kind=kind, actor=reviewer, reason=note)
    version.refresh_from_db()
    return version


def model_version_approve(*, version, reviewer, note=""):
    """Approve a pending version (reviewers only, never one's own, within the promotion policy)."""
    from models_registry.evidence import policy_violations

    _check_reviewer(version, reviewer)
    violations = policy_violations(version)
    if violations:
        raise ConflictError(
            "The promotion policy blocks this approval: " + "; ".join(violations),
            code="policy_blocked",
            fields={"policy": violations},
        )
    return _review(version, reviewer, ReviewStatus.APPROVED, note.strip(), VersionEventKind.APPROVED)


def model_version_reject(*, version, reviewer, reason):
    """Reject a pending version with a reason (reviewers only, never one's own)."""
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("A rejection needs a reason.", fields={"reason": ["This field is required."]})
    return _review(version, reviewer, ReviewStatus.REJECTED, reason, VersionEventKind.REJECTED)


def model_version_record_event(*, version, kind, actor=None, reason=""):
    """Append an audit event and tell the owner and integrators (webhooks, email, live), after commit."""
    from notifications.services import registry_event_publish

    event = ModelVersionEvent.objects.create(version=version, kind=kind, actor=actor, reason=reason)
    registry_event_publish(version=version, kind=kind, actor=actor, reason=reason)
    return event


def base_model_create(*, instance, uploaded_by):
    """Store staff-uploaded base weights with their sha256 (the name embeds it)."""
    digest = hashlib.sha256()
    upload = instance.weights.file
    upload.seek(0)
    for chunk in iter(lambda: upload.read(1024 * 1024), b""):
        digest.update(chunk)
    upload.seek(0)
    instance.sha256 = digest.hexdigest()
    instance.size = instance.weights.size
    instance.uploaded_by = uploaded_by
    instance.save()
    return instance
