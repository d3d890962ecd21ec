"""Writes for training jobs: create, claim, lease, cancel, reap, finish."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from datasets.choices import DatasetStatus
from jobs.choices import TERMINAL_STATUSES, EventKind, JobStatus, statuses_allowing
from jobs.events import job_event_record
from jobs.models import TrainingJob
from portal.errors import ApplicationError, ConflictError


def token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def _enqueue_run(job_id):
    from jobs.tasks import training_job_run

    training_job_run.delay(job_id)


def training_job_create(*, owner, dataset, config):
    """Create a queued job and wake a GPU worker once the row is committed."""
    if dataset.status != DatasetStatus.READY:
        raise ConflictError(
            f"Data set {dataset.pk} is {dataset.status}; only a ready data set can be trained on.",
            fields={"dataset": [f"Data set is {dataset.status}."]},
        )
    if dataset.owner_id != owner.pk and not owner.is_staff:
        raise ApplicationError("Unknown data set.", fields={"dataset": ["Unknown data set."]})
    with transaction.atomic():
        job = TrainingJob.objects.create(
            owner=owner,
            dataset=dataset,
            config=config,
            epochs=config["epochs"],
            max_attempts=settings.JOB_MAX_ATTEMPTS,
        )
        job_event_record(job=job, kind=EventKind.QUEUED, payload={"config": config})
        transaction.on_commit(lambda: _enqueue_run(job.pk))
    return job


def _transition(job_id, target, *, fencing_token=None, **fields):
    """Move a job to `target` if its status allows it; return the number of rows changed."""
    queryset = TrainingJob.objects.filter(pk=job_id, status__in=statuses_allowing(target))
    if fencing_token is not None:
        queryset = queryset.filter(fencing_token=fencing_token)
    return queryset.update(status=target, **fields)


def training_job_claim(*, job_id, worker):
    """Claim a queued job for this worker (compare-and-set on the status).

    Returns (job, callback_token), or None when the job is not queued any more
    (cancelled, or already claimed by another worker after a redelivery).
    """
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        claimed = TrainingJob.objects.filter(pk=job_id, status=JobStatus.QUEUED, attempt__lt=F("max_attempts")).update(
            status=JobStatus.RUNNING,
            attempt=F("attempt") + 1,
            fencing_token=F("fencing_token") + 1,
            callback_token_hash=token_hash(token),
            lease_until=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
            last_heartbeat_at=now,
            worker=worker,
            started_at=now,
            error="",
        )
        if not claimed:
            return None
        job = TrainingJob.objects.get(pk=job_id)
        job_event_record(job=job, kind=EventKind.CLAIMED, payload={"worker": worker, "attempt": job.attempt})
    return job, token


def training_job_renew_lease(*, job_id, fencing_token):
    """Extend the lease of a job this worker still owns; return its status, or None if lost."""
    updated = TrainingJob.objects.filter(
        pk=job_id, fencing_token=fencing_token, status__in=[JobStatus.RUNNING, JobStatus.CANCELLING]
    ).update(lease_until=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS))
    if not updated:
        return None
    return TrainingJob.objects.values_list("status", flat=True).get(pk=job_id)


def training_job_cancel(*, job):
    """Cancel a job: a queued job never starts, a running one is stopped by its launcher."""
    now = timezone.now()
    with transaction.atomic():
        if TrainingJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=now
        ):
            job.refresh_from_db()
            job_event_record(job=job, kind=EventKind.CANCELLED, payload={"reason": "cancelled before it started"})
            return job
        if TrainingJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(status=JobStatus.CANCELLING):
            job.refresh_from_db()
            job_event_record(job=job, kind=EventKind.CANCEL_REQUESTED)
            return job
    job.refresh_from_db()
    raise ConflictError(f"Job {job.pk} is {job.status} and cannot be cancelled.")


def training_job_fail(*, job_id, fencing_token, error):
    with transaction.atomic():
        if not _transition(
            job_id, JobStatus.FAILED, fencing_token=fencing_token, error=error[-5000:], finished_at=timezone.now()
        ):
            return False
        job = TrainingJob.objects.get(pk=job_id)
        job_event_record(job=job, kind=EventKind.FAILED, payload={"error": error[-2000:]})
    return True


def training_job_finish_cancel(*, job_id, fencing_token):
    with transaction.atomic():
        if not _transition(job_id, JobStatus.CANCELLED, fencing_token=fencing_token, finished_at=timezone.now()):
            return False
        job = TrainingJob.objects.get(pk=job_id)
        job_event_record(job=job, kind=EventKind.CANCELLED, payload={"reason": "stopped on request"})
    return True


def training_jobs_reap(*, now=None):
    """Re-queue running jobs whose lease lapsed (worker killed, node lost).

    A job that used all its attempts fails with the reason instead. Returns the
    ids of the jobs re-queued.
    """
    now = now or timezone.now()
    requeued = []
    expired = TrainingJob.objects.filter(
        status__in=[JobStatus.RUNNING, JobStatus.CANCELLING], lease_until__lt=now
    ).values_list("pk", "fencing_token", "attempt", "max_attempts", "status")
    for job_id, fencing_token, attempt, max_attempts, status in expired:
        reason = f"the worker stopped renewing its lease (attempt {attempt})"
        if status == JobStatus.CANCELLING:
            training_job_finish_cancel(job_id=job_id, fencing_token=fencing_token)
        elif attempt >= max_attempts:
            training_job_fail(
                job_id=job_id, fencing_token=fencing_token, error=f"{reason}; all {max_attempts} attempts used"
            )
        else:
            with transaction.atomic():
                if _transition(
                    job_id, JobStatus.QUEUED, fencing_token=fencing_token, lease_until=None, callback_token_hash=""
                ):
                    job = TrainingJob.objects.get(pk=job_id)
                    job_event_record(job=job, kind=EventKind.REQUEUED, payload={"reason": reason})
                    transaction.on_commit(lambda job_id=job_id: _enqueue_run(job_id))
                    requeued.append(job_id)
    return requeued


def training_job_is_terminal(job):
    return job.status in TERMINAL_STATUSES
