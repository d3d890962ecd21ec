"""The training pages of the dashboard: the list, the new-training form, and one job's live page.

The pages are thin: they render what the database holds and let the browser use
the API (session authentication) to act and the live feed to follow a job.
"""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from rest_framework.fields import empty

from datasets.choices import DatasetStatus
from datasets.selectors import dataset_list
from jobs import selectors
from jobs.api.serializers import MODEL_CHOICES, OPTIMIZERS, TrainingConfigSerializer
from jobs.choices import TERMINAL_STATUSES, JobKind, JobStatus
from models_registry.choices import ReviewStatus
from models_registry.selectors import model_version_list, registered_model_list

STATUS_FILTERS = ["queued", "running", "completed", "failed", "cancelled"]
CANCELLABLE = {JobStatus.QUEUED, JobStatus.RUNNING}
RETRYABLE = {JobStatus.FAILED, JobStatus.CANCELLED}
# How many epochs the charts' text fallback lists.
FALLBACK_EPOCHS = 10


@login_required
def training_list_page(request):
    status = request.GET.get("status", "")
    if status not in STATUS_FILTERS:
        status = ""
    jobs = selectors.training_job_page_list(user=request.user, status=status or None)[:200]
    return render(
        request,
        "training/training_list.html",
        {"jobs": jobs, "status": status, "status_filters": STATUS_FILTERS},
    )


def _training_defaults():
    """The API's own defaults, so the form and the API never disagree."""
    defaults = {}
    for name, field in TrainingConfigSerializer().fields.items():
        if field.default is not empty:
            defaults[name] = field.default() if callable(field.default) else field.default
    return defaults


@login_required
def training_new_page(request):
    datasets = dataset_list(user=request.user).filter(status=DatasetStatus.READY).order_by("-created_at")
    raw = request.GET.get("dataset", "")
    selected = int(raw) if raw.isdigit() and any(dataset.pk == int(raw) for dataset in datasets) else None
    context = {
        "datasets": datasets,
        "selected_dataset": selected,
        "pending_datasets": dataset_list(user=request.user).filter(status=DatasetStatus.VALIDATING).count(),
        "defaults": _training_defaults(),
        "model_choices": MODEL_CHOICES,
        "optimizers": OPTIMIZERS,
        "queues": settings.JOB_QUEUES,
        "base_models": selectors.training_base_model_list(),
        "approved_versions": model_version_list(user=request.user)
        .filter(review_status=ReviewStatus.APPROVED)
        .order_by("registered_model__name", "-number"),
        "registered_models": registered_model_list(user=request.user).filter(owner=request.user),
    }
    return render(request, "training/training_new.html", context)


def _fallback_row(row):
    """A short summary of one epoch for the charts' text fallback."""

    def total(prefix):
        losses = [value for key, value in row.items() if key.startswith(prefix) and key.endswith("loss")]
        return sum(losses) if losses else None

    return {
        "epoch": row["epoch"],
        "train_loss": total("train/"),
        "val_loss": total("val/"),
        "map50": row.get("mAP50"),
        "map50_95": row.get("mAP50-95"),
    }


@login_required
def training_detail_page(request, pk):
    job = get_object_or_404(selectors.job_list(user=request.user, kind=JobKind.TRAIN), pk=pk)
    # The id first: the page asks the API for every event after it, so nothing stored
    # between these reads and the live feed's connection is lost (at worst a log line repeats).
    last_event_id = selectors.job_last_event_id(job=job)
    history = selectors.job_epoch_history(job=job, until_event=last_event_id)
    version = getattr(job, "trained_version", None)
    validation = None
    if version is not None:
        validation = (
            selectors.job_list(user=request.user, kind=JobKind.VALIDATE)
            .filter(model_version=version)
            .order_by("-id")
            .first()
        )
    context = {
        "job": job,
        "config": job.config,
        "device": job.device or job.config.get("device") or "auto",
        "history": history,
        "fallback_rows": [_fallback_row(row) for row in history[-FALLBACK_EPOCHS:]],
        "log_lines": selectors.job_log_tail(job=job, lines=200),
        "page_state": {
            "job": job.pk,
            "status": job.status,
            "epoch": job.epoch,
            "epochs": job.epochs,
            "progress": job.progress,
            "eta_seconds": job.eta_seconds,
            "last_heartbeat_at": job.last_heartbeat_at.isoformat() if job.last_heartbeat_at else None,
            "lease_until": job.lease_until.isoformat() if job.lease_until else None,
            "attempt": job.attempt,
            "max_attempts": job.max_attempts,
            "last_event_id": last_event_id,
            "terminal": job.status in TERMINAL_STATUSES,
        },
        "version": version,
        "validation": validation,
        "validation_result": getattr(validation, "validation_result", None) if validation else None,
        "can_cancel": job.status in CANCELLABLE,
        "can_retry": job.status in RETRYABLE,
        "terminal": job.status in TERMINAL_STATUSES,
        "base_model": selectors.training_base_model_list().filter(pk=job.config.get("base_model")).first()
        if job.config.get("base_model")
        else None,
    }
    return render(request, "training/training_detail.html", context)
