"""Reads for jobs, always scoped to the requesting user."""

from django.db.models import Prefetch

from jobs.choices import EventKind, JobKind
from jobs.models import Job, JobEvent


def job_list(*, user, kind=None):
    queryset = Job.objects.select_related("dataset", "model_version").prefetch_related("attempts")
    if kind == JobKind.TRAIN:
        queryset = queryset.select_related("trained_version").prefetch_related("checkpoints")
    elif kind == JobKind.VALIDATE:
        queryset = queryset.select_related("validation_result")
    if kind:
        queryset = queryset.filter(kind=kind)
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)


def job_snapshot(job):
    """The job as the live feed's first message: the database's view, not a cache's."""
    from jobs.api.serializers import TrainingJobSerializer, ValidationJobSerializer

    serializer = ValidationJobSerializer if job.kind == JobKind.VALIDATE else TrainingJobSerializer
    return {"type": "snapshot", "job": serializer(job).data}


def job_log_tail(*, job, lines=200):
    """The last `lines` log lines shipped by the launcher (and the trainer's epoch summaries)."""
    collected = []
    events = JobEvent.objects.filter(job=job, kind=EventKind.LOG).order_by("-id").only("payload", "attempt")
    for event in events.iterator(chunk_size=50):
        batch = [f"[attempt {event.attempt}] {line}" for line in event.payload.get("lines", [])]
        collected[:0] = batch
        if len(collected) >= lines:
            break
    return collected[-lines:]


def jobs_compare(*, user, ids):
    """Metrics of several training jobs side by side: final metrics and the per-epoch history."""
    jobs = (
        job_list(user=user, kind=JobKind.TRAIN)
        .filter(pk__in=ids)
        .prefetch_related(
            Prefetch(
                "events", queryset=JobEvent.objects.filter(kind=EventKind.EPOCH).order_by("id"), to_attr="epochs_seen"
            )
        )
    )
    rows = []
    for job in jobs:
        history = {}
        for event in job.epochs_seen:
            history[event.payload["epoch"]] = event.payload.get("metrics", {})  # a resumed epoch overwrites
        rows.append(
            {
                "id": job.pk,
                "status": job.status,
                "config": job.config,
                "dataset": job.dataset_id,
                "metrics": job.metrics,
                "history": [{"epoch": epoch, **metrics} for epoch, metrics in sorted(history.items())],
            }
        )
    return sorted(rows, key=lambda row: ids.index(row["id"]))
