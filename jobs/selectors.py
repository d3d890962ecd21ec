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


# The training pages' reads. A status filter of the list names a group: "running" is
# everything not finished yet, as the home page's "queued or running" card links to it.
TRAINING_STATUS_FILTERS = {
    "queued": ["queued"],
    "running": ["queued", "running", "cancelling"],
    "completed": ["completed"],
    "failed": ["failed"],
    "cancelled": ["cancelled"],
}


def training_job_page_list(*, user, status=None):
    """The user's training jobs with the best mAP50 any epoch reached (`best_map50`, None before one)."""
    from django.db.models import FloatField, OuterRef, Subquery
    from django.db.models.fields.json import KT
    from django.db.models.functions import Cast

    best = (
        JobEvent.objects.filter(job=OuterRef("pk"), kind=EventKind.EPOCH)
        .annotate(value=Cast(KT("payload__metrics__mAP50"), FloatField()))
        .filter(value__isnull=False)
        .order_by("-value")
        .values("value")[:1]
    )
    queryset = job_list(user=user, kind=JobKind.TRAIN).annotate(best_map50=Subquery(best))
    if status in TRAINING_STATUS_FILTERS:
        queryset = queryset.filter(status__in=TRAINING_STATUS_FILTERS[status])
    return queryset


def job_epoch_history(*, job, until_event=None):
    """One row per epoch, oldest first: `epoch`, `seconds` and that epoch's metrics.

    A resumed attempt trains again the epochs after its checkpoint: a `resumed` event
    drops them from the history and the new attempt's epochs take their place.
    """
    events = (
        JobEvent.objects.filter(job=job, kind__in=[EventKind.EPOCH, EventKind.RESUMED])
        .order_by("id")
        .only("kind", "payload")
    )
    if until_event is not None:
        events = events.filter(pk__lte=until_event)
    history = {}
    for event in events:
        payload = event.payload
        if event.kind == EventKind.RESUMED:
            history = {epoch: row for epoch, row in history.items() if epoch <= payload.get("epoch", 0)}
            continue
        history[payload["epoch"]] = {
            "epoch": payload["epoch"],
            "seconds": payload.get("epoch_seconds"),
            **payload.get("metrics", {}),
        }
    return [history[epoch] for epoch in sorted(history)]


def job_last_event_id(*, job):
    """The newest stored event's id (0 without events): the live page asks for what came after it."""
    return JobEvent.objects.filter(job=job).order_by("-id").values_list("id", flat=True).first() or 0


def training_base_model_list():
    """The staff-uploaded base models any user may start a training from."""
    from models_registry.models import BaseModel

    return BaseModel.objects.only("pk", "name", "description").order_by("name")
