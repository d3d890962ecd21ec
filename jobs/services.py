"""Writes for jobs: create, retry, claim, lease, cancel, requeue, reap, finish.

Every status change is a conditional update from the statuses that allow it
(jobs/choices.py); a worker's writes are also fenced by the fencing token of its
claim, so a writer from an earlier attempt can never change the job.
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from datasets.choices import DatasetStatus
from jobs.choices import AttemptOutcome, EventKind, JobKind, JobStatus, statuses_allowing
from jobs.events import job_event_record
from jobs.models import Job, JobAttempt
from portal.errors import ApplicationError, ConflictError


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def broker_priority(priority):
    """The API's priority (9 = most urgent) in the broker's terms: Redis serves 0 first."""
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return 9 - priority
    return priority


def _enqueue_run(job_id, queue, priority):
    from jobs.tasks import job_run

    job_run.apply_async(args=[job_id], queue=queue, priority=broker_priority(priority))


def _enqueue_on_commit(job):
    job_id, queue, priority = job.pk, job.queue, job.priority
    transaction.on_commit(lambda: _enqueue_run(job_id, queue, priority))


def _job_announce(job, event_config):
    """Record the job's `queued` event and wake a worker once the transaction commits."""
    job_event_record(job=job, kind=EventKind.QUEUED, payload={"config": event_config})
    _enqueue_on_commit(job)


def _job_queue(*, kind, owner, dataset, config, model_version=None, retry_of=None, epochs=0):
    """Create a queued job of any kind (inside the caller's transaction) and announce it."""
    job = Job.objects.create(
        kind=kind,
        owner=owner,
        dataset=dataset,
        model_version=model_version,
        retry_of=retry_of,
        config=config,
        epochs=epochs,
        queue=config.get("queue", "gpu"),
        priority=config.get("priority", 5),
        max_attempts=settings.JOB_MAX_ATTEMPTS,
    )
    _job_announce(job, config)
    return job


def _check_dataset(owner, dataset):
    if dataset.owner_id != owner.pk and not owner.is_staff:
        raise ApplicationError("Unknown data set.", fields={"dataset": ["Unknown data set."]})
    if dataset.status != DatasetStatus.READY:
        raise ConflictError(
            f"Data set {dataset.pk} is {dataset.status}; only a ready data set can be used.",
            fields={"dataset": [f"Data set is {dataset.status}."]},
        )


def training_job_create(*, owner, dataset, config, fine_tune_from=None, retry_of=None):
    """Create a queued training job and wake a GPU worker once the row is committed."""
    _check_dataset(owner, dataset)
    from models_registry.models import RegisteredModel

    name = config.get("registered_model")
    existing = RegisteredModel.objects.filter(owner=owner, name=name).first() if name else None
    if existing is not None and existing.task != dataset.task:
        raise ApplicationError(
            f"Registered model {name!r} is a {existing.task} model; this data set is {dataset.task}.",
            fields={"registered_model": ["Task mismatch."]},
        )
    with transaction.atomic():
        return _job_queue(
            kind=JobKind.TRAIN,
            owner=owner,
            dataset=dataset,
            config=config,
            model_version=fine_tune_from,
            retry_of=retry_of,
            epochs=config["epochs"],
        )


def validation_job_create(*, owner, model_version, dataset, config, retry_of=None):
    """Evaluate a model version on a data set split (conf and iou thresholds in `config`)."""
    _check_dataset(owner, dataset)
    if model_version.registered_model.task != dataset.task:
        raise ApplicationError(
            f"A {model_version.registered_model.task} model cannot be validated on a {dataset.task} data set.",
            fields={"dataset": ["Task mismatch."]},
        )
    with transaction.atomic():
        return _job_queue(
            kind=JobKind.VALIDATE,
            owner=owner,
            dataset=dataset,
            config=config,
            model_version=model_version,
            retry_of=retry_of,
        )


def export_job_create(*, owner, model_version, export_format, retry_of=None):
    """Export a version to ONNX or TorchScript as a job (one export per version and format)."""
    from models_registry.models import ModelArtifact

    if ModelArtifact.objects.filter(version=model_version, format=export_format).exists():
        raise ConflictError(f"{model_version} was already exported to {export_format}.", code="already_exported")
    running = Job.objects.filter(
        kind=JobKind.EXPORT,
        model_version=model_version,
        config__format=export_format,
        status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
    ).first()
    if running is not None:
        return running
    config = {
        "format": export_format,
        "imgsz": model_version.training_job.config.get("imgsz", 640) if model_version.training_job_id else 640,
        "device": "cpu",
    }
    with transaction.atomic():
        return _job_queue(
            kind=JobKind.EXPORT,
            owner=owner,
            dataset=model_version.dataset,
            config=config,
            model_version=model_version,
            retry_of=retry_of,
        )


def inference_job_create(*, owner, model_version, images, config):
    """Queue an inference job on the `gpu` queue for a list of checked `InputImage`s.

    The images are stored first (under the job's folder), then listed in the job's
    configuration in order; each result row points back to its stored image.
    """
    from models_registry.choices import ReviewStatus

    if model_version.created_by_id != owner.pk and not owner.is_staff:
        raise ApplicationError("Unknown model version.", fields={"model_version": ["Unknown model version."]})
    if model_version.review_status != ReviewStatus.APPROVED:
        raise ConflictError(
            f"Version {model_version} is {model_version.review_status}; only approved versions run inference.",
            fields={"model_version": ["Not approved."]},
        )
    if not images:
        raise ApplicationError("Send at least one image.", fields={"images": ["Required."]})
    stored = []
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=JobKind.INFER,
                owner=owner,
                dataset=model_version.dataset,  # the version's own data set (the column is required)
                model_version=model_version,
                config=config,
                epochs=0,
                queue=config.get("queue", "gpu"),
                priority=config.get("priority", 5),
                max_attempts=settings.JOB_MAX_ATTEMPTS,
            )
            inputs = []
            for index, image in enumerate(images):
                suffix = image.name.rsplit(".", 1)[-1].lower() if "." in image.name else "jpg"
                name = default_storage.save(f"jobs/{job.pk}/inputs/{index:06d}.{suffix}", ContentFile(image.data))
                stored.append(name)
                inputs.append({"name": image.name[:300], "storage_name": name})
            job.config = {**config, "inputs": inputs}
            job.save(update_fields=["config"])
            _job_announce(job, {**config, "images": len(inputs)})
    except Exception:
        for name in stored:  # nothing half-written: no files without their job
            default_storage.delete(name)
        raise
    return job


def job_retry(*, job, owner):
    """Start a new job with the same configuration as a failed or cancelled one."""
    if job.status not in {JobStatus.FAILED, JobStatus.CANCELLED}:
        raise ConflictError(f"Job {job.pk} is {job.status}; only failed or cancelled jobs can be retried.")
    if job.kind == JobKind.INFER:
        raise ConflictError("An inference job is not retried: send its images again as a new job.")
    if job.kind == JobKind.EXPORT:
        return export_job_create(
            owner=owner, model_version=job.model_version, export_format=job.config["format"], retry_of=job
        )
    if job.kind == JobKind.VALIDATE:
        return validation_job_create(
            owner=owner, model_version=job.model_version, dataset=job.dataset, config=job.config, retry_of=job
        )
    return training_job_create(
        owner=owner, dataset=job.dataset, config=job.config, fine_tune_from=job.model_version, retry_of=job
    )


def job_claim(*, job_id, worker, device=""):
    """Claim a queued job for this worker (compare-and-set on the status).

    Returns (job, callback_token), or None when the job is not queued any more
    (cancelled, or already claimed after a redelivered message).
    """
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        claimed = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED, attempt__lt=F("max_attempts")).update(
            status=JobStatus.RUNNING,
            attempt=F("attempt") + 1,
            fencing_token=F("fencing_token") + 1,
            callback_token_hash=token_hash(token),
            lease_until=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
            last_heartbeat_at=now,
            worker=worker,
            device=device,
            started_at=now,
            error="",
        )
        if not claimed:
            return None
        job = Job.objects.get(pk=job_id)
        JobAttempt.objects.create(job=job, number=job.attempt, worker=worker, device=device)
        job_event_record(job=job, kind=EventKind.CLAIMED, payload={"worker": worker, "attempt": job.attempt})
    return job, token


def job_renew_lease(*, job_id, fencing_token):
    """Extend the lease of a job this worker still owns; return its status, or None if lost."""
    updated = Job.objects.filter(
        pk=job_id, fencing_token=fencing_token, status__in=[JobStatus.RUNNING, JobStatus.CANCELLING]
    ).update(lease_until=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS))
    if not updated:
        return None
    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def job_status_if_owned(*, job_id, fencing_token):
    """The job's status while this claim still owns it, else None (cheap poll for cancel)."""
    return Job.objects.filter(pk=job_id, fencing_token=fencing_token).values_list("status", flat=True).first()


def _attempt_close(job_id, number, outcome, *, exit_code=None, detail=""):
    JobAttempt.objects.filter(job_id=job_id, number=number, outcome=AttemptOutcome.RUNNING).update(
        outcome=outcome, exit_code=exit_code, detail=detail[-2000:], ended_at=timezone.now()
    )


def job_cancel(*, job):
    """Cancel a job: a queued job never starts, a running one is stopped by its launcher."""
    now = timezone.now()
    with transaction.atomic():
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(status=JobStatus.CANCELLED, finished_at=now):
            job.refresh_from_db()
            job_event_record(job=job, kind=EventKind.CANCELLED, payload={"reason": "cancelled before it started"})
            return job
        if Job.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(status=JobStatus.CANCELLING):
            job.refresh_from_db()
            job_event_record(job=job, kind=EventKind.CANCEL_REQUESTED)
            return job
    job.refresh_from_db()
    raise ConflictError(f"Job {job.pk} is {job.status} and cannot be cancelled.")


def _transition(job_id, target, *, fencing_token, **fields):
    return Job.objects.filter(pk=job_id, status__in=statuses_allowing(target), fencing_token=fencing_token).update(
        status=target, **fields
    )


def job_fail(*, job_id, fencing_token, error, exit_code=None):
    with transaction.atomic():
        if not _transition(
            job_id, JobStatus.FAILED, fencing_token=fencing_token, error=error[-5000:], finished_at=timezone.now()
        ):
            return False
        job = Job.objects.get(pk=job_id)
        _attempt_close(job_id, job.attempt, AttemptOutcome.FAILED, exit_code=exit_code, detail=error)
        job_event_record(job=job, kind=EventKind.FAILED, payload={"error": error[-2000:]})
    return True


def job_finish_cancel(*, job_id, fencing_token):
    with transaction.atomic():
        if not _transition(job_id, JobStatus.CANCELLED, fencing_token=fencing_token, finished_at=timezone.now()):
            return False
        job = Job.objects.get(pk=job_id)
        _attempt_close(job_id, job.attempt, AttemptOutcome.CANCELLED)
        job_event_record(job=job, kind=EventKind.CANCELLED, payload={"reason": "stopped on request"})
    return True


def job_requeue(*, job_id, fencing_token, reason, exit_code=None):
    """Give a running job another attempt (crash, lost worker), or fail it when none is left.

    Returns True when the job was re-queued.
    """
    job = Job.objects.filter(pk=job_id, fencing_token=fencing_token).first()
    if job is None:
        return False
    if job.status == JobStatus.CANCELLING:
        job_finish_cancel(job_id=job_id, fencing_token=fencing_token)
        return False
    if job.attempt >= job.max_attempts:
        job_fail(
            job_id=job_id,
            fencing_token=fencing_token,
            error=f"{reason}; all {job.max_attempts} attempts used",
            exit_code=exit_code,
        )
        return False
    with transaction.atomic():
        if not _transition(
            job_id, JobStatus.QUEUED, fencing_token=fencing_token, lease_until=None, callback_token_hash=""
        ):
            return False
        job.refresh_from_db()
        _attempt_close(job_id, job.attempt, AttemptOutcome.REQUEUED, exit_code=exit_code, detail=reason)
        job_event_record(job=job, kind=EventKind.REQUEUED, payload={"reason": reason, "attempt": job.attempt})
        _enqueue_on_commit(job)
    return True


def jobs_reap(*, now=None):
    """Re-queue running jobs whose lease lapsed (worker killed, node lost).

    A job that used all its attempts fails with the reason instead. Returns the
    ids of the jobs re-queued.
    """
    now = now or timezone.now()
    expired = Job.objects.filter(status__in=[JobStatus.RUNNING, JobStatus.CANCELLING], lease_until__lt=now).values_list(
        "pk", "fencing_token", "attempt"
    )
    requeued = []
    for job_id, fencing_token, attempt in expired:
        reason = f"the worker stopped renewing its lease (attempt {attempt})"
        if job_requeue(job_id=job_id, fencing_token=fencing_token, reason=reason):
            requeued.append(job_id)
    return requeued
