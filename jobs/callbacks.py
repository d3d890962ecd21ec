"""The trainer's HTTP callbacks: authenticate, fence, validate, persist, broadcast.

Each callback carries the job's secret token (Authorization: Bearer) and the
fencing token of the attempt that wrote it. A wrong token is refused (403), a
stale fencing token, an epoch that goes backwards, or anything after a terminal
state is refused as a conflict (409).
"""

import hmac
import posixpath

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from jobs.choices import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    AttemptOutcome,
    CheckpointKind,
    EventKind,
    JobKind,
    JobStatus,
)
from jobs.events import job_event_record
from jobs.models import Checkpoint, Job, JobAttempt, ValidationResult
from jobs.services import _attempt_close, job_fail, job_finish_cancel, token_hash
from portal.errors import ApplicationError, ConflictError, ForbiddenError

CALLBACK_TYPES = (
    "started",
    "progress",
    "epoch",
    "log",
    "checkpoint",
    "results",
    "predictions",
    "done",
    "failed",
    "completed",
    "cancelled",
    "crashed",
)


def _number(payload, key, *, required=True, minimum=0):
    value = payload.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ApplicationError(f"'{key}' must be a number >= {minimum}.", fields={key: ["Invalid number."]})
    return value


def _clean_metrics(metrics):
    if not isinstance(metrics, dict):
        raise ApplicationError("'metrics' must be an object.", fields={"metrics": ["Expected an object."]})
    clean = {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            clean[str(key)[:100]] = round(float(value), 6)
    return clean


def job_callback(*, job_id, token, payload):
    """Apply one callback to a job; returns the stored event."""
    if not isinstance(payload, dict):
        raise ApplicationError("The body must be a JSON object.")
    kind = payload.get("type")
    if kind not in CALLBACK_TYPES:
        raise ApplicationError(
            f"Unknown callback type {kind!r}; expected one of {', '.join(CALLBACK_TYPES)}.",
            fields={"type": ["Unknown type."]},
        )
    fencing_token = _number(payload, "fencing_token", minimum=1)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or not job.callback_token_hash or not token:
            raise ForbiddenError("Invalid callback token.", code="bad_token")
        if not hmac.compare_digest(job.callback_token_hash, token_hash(token)):
            raise ForbiddenError("Invalid callback token.", code="bad_token")
        if fencing_token != job.fencing_token:
            raise ConflictError(
                f"Stale writer: fencing token {fencing_token} is not the current one ({job.fencing_token}).",
                code="stale_fencing_token",
            )
        if job.status in TERMINAL_STATUSES or job.status not in ACTIVE_STATUSES:
            raise ConflictError(f"Job {job.pk} is {job.status}; no more callbacks are accepted.", code="job_terminal")
        handler = _HANDLERS[kind]
        return handler(job, payload)


def _touch(job, **fields):
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(last_heartbeat_at=now, **fields)
    for key, value in fields.items():
        setattr(job, key, value)
    job.last_heartbeat_at = now


def _on_started(job, payload):
    """The trainer runs. A resumed trainer says from which epoch: the job rewinds to it.

    Epochs after the checkpoint may have been reported by the attempt that died;
    they are trained again, so the epoch count goes back to the checkpoint's.
    """
    device = str(payload.get("device", ""))[:200]
    fields = {"device": device}
    resumed = _number(payload, "resumed_from_epoch", required=False)
    if resumed is not None:
        if resumed > job.epochs:
            raise ApplicationError("'resumed_from_epoch' is beyond the configured epochs.")
        fields.update(epoch=int(resumed), progress=_progress_percent(int(resumed), 0, job.epochs))
        JobAttempt.objects.filter(job=job, number=job.attempt).update(resumed_from_epoch=int(resumed), device=device)
    else:
        JobAttempt.objects.filter(job=job, number=job.attempt).update(device=device)
    _touch(job, **fields)
    event = job_event_record(job=job, kind=EventKind.STARTED, payload={"device": device, **_extra(payload)})
    if resumed is not None:
        job_event_record(job=job, kind=EventKind.RESUMED, payload={"epoch": int(resumed), "attempt": job.attempt})
    return event


def _extra(payload):
    keys = ("gpu_memory_mb", "resumed_from_epoch", "torch", "ultralytics")
    return {k: payload[k] for k in keys if k in payload}


def _progress_percent(done_epochs, fraction, epochs):
    return round(min(99.0, 100.0 * (done_epochs + fraction) / max(epochs, 1)), 2)


def _on_progress(job, payload):
    epoch = _number(payload, "epoch", minimum=1)
    batch = _number(payload, "batch", minimum=0)
    batches = _number(payload, "batches", minimum=1)
    if epoch <= job.epoch:
        raise ConflictError(
            f"Progress for epoch {epoch} arrived after epoch {job.epoch} was finished.", code="epoch_regression"
        )
    eta = _number(payload, "eta_seconds", required=False)
    fraction = min(batch / batches, 1.0)
    progress = max(job.progress, _progress_percent(epoch - 1, fraction, job.epochs))
    _touch(job, progress=progress, eta_seconds=eta)
    data = {"epoch": epoch, "batch": batch, "batches": batches, "progress": progress, "eta_seconds": eta}
    if "gpu_memory_mb" in payload:
        data["gpu_memory_mb"] = _number(payload, "gpu_memory_mb")
    return job_event_record(job=job, kind=EventKind.PROGRESS, payload=data)


def _on_epoch(job, payload):
    epoch = _number(payload, "epoch", minimum=1)
    if epoch <= job.epoch:
        raise ConflictError(f"Epoch {epoch} is not after epoch {job.epoch}.", code="epoch_regression")
    if epoch > job.epochs:
        raise ApplicationError(
            f"Epoch {epoch} is beyond the {job.epochs} configured.", fields={"epoch": ["Too large."]}
        )
    metrics = _clean_metrics(payload.get("metrics", {}))
    eta = _number(payload, "eta_seconds", required=False)
    seconds = _number(payload, "epoch_seconds", required=False)
    progress = _progress_percent(epoch, 0, job.epochs)
    _touch(job, epoch=epoch, metrics=metrics, progress=progress, eta_seconds=eta)
    return job_event_record(
        job=job,
        kind=EventKind.EPOCH,
        payload={
            "epoch": epoch,
            "epochs": job.epochs,
            "metrics": metrics,
            "progress": progress,
            "eta_seconds": eta,
            "epoch_seconds": seconds,
        },
    )


def _on_log(job, payload):
    lines = payload.get("lines")
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise ApplicationError("'lines' must be a list of strings.", fields={"lines": ["Expected strings."]})
    _touch(job)
    return job_event_record(job=job, kind=EventKind.LOG, payload={"lines": [line[:2000] for line in lines[:200]]})


def _on_done(job, payload):
    metrics = _clean_metrics(payload.get("metrics", {}))
    _touch(job, metrics=metrics or job.metrics)
    return job_event_record(job=job, kind=EventKind.TRAINER_DONE, payload={"metrics": metrics})


def _on_failed(job, payload):
    error = str(payload.get("error") or "the trainer reported a failure")
    exit_code = payload.get("exit_code") if isinstance(payload.get("exit_code"), int) else None
    job_fail(job_id=job.pk, fencing_token=job.fencing_token, error=error, exit_code=exit_code)
    return job.events.last()


def _on_cancelled(job, payload):
    if job.status != JobStatus.CANCELLING:
        raise ConflictError(f"Job {job.pk} was not asked to cancel.")
    job_finish_cancel(job_id=job.pk, fencing_token=job.fencing_token)
    return job.events.last()


def _on_crashed(job, payload):
    """The child died without reporting (killed, out of memory): another attempt resumes it."""
    from jobs.services import job_requeue

    reason = str(payload.get("reason") or "the trainer died without reporting")[:1000]
    exit_code = payload.get("exit_code") if isinstance(payload.get("exit_code"), int) else None
    job_requeue(job_id=job.pk, fencing_token=job.fencing_token, reason=reason, exit_code=exit_code)
    return job.events.last()


def _own_stored_file(job, name, field):
    """A name the launcher stored for this job; anything else is refused."""
    prefix = f"jobs/{job.pk}/"
    if (
        not isinstance(name, str)
        or posixpath.normpath(name) != name
        or ".." in name.split("/")
        or not name.startswith(prefix)
        or not default_storage.exists(name)
    ):
        raise ApplicationError(
            f"'{field}' must name a file stored for this job.", fields={field: ["Not this job's file."]}
        )
    return name


def _on_checkpoint(job, payload):
    kind = payload.get("kind")
    if kind not in CheckpointKind.values:
        raise ApplicationError("'kind' must be 'last' or 'best'.", fields={"kind": ["Invalid."]})
    sha256 = payload.get("sha256")
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise ApplicationError("'sha256' is required.", fields={"sha256": ["Required."]})
    checkpoint = Checkpoint.objects.create(
        job=job,
        attempt=job.attempt,
        epoch=int(_number(payload, "epoch")),
        kind=kind,
        storage_name=_own_stored_file(job, payload.get("storage_name"), "storage_name"),
        sha256=sha256,
        size=int(_number(payload, "size")),
    )
    _touch(job)
    return job_event_record(
        job=job,
        kind=EventKind.CHECKPOINT,
        payload={"epoch": checkpoint.epoch, "kind": kind, "sha256": sha256, "size": checkpoint.size},
    )


def _on_results(job, payload):
    if job.kind != JobKind.VALIDATE:
        raise ApplicationError("Only validation jobs report results.")
    per_class = payload.get("per_class", [])
    matrix = payload.get("confusion_matrix", {})
    curves = payload.get("curves", {})
    if not isinstance(per_class, list) or not isinstance(matrix, dict) or not isinstance(curves, dict):
        raise ApplicationError("'per_class' must be a list, 'confusion_matrix' and 'curves' objects.")
    config = job.config
    metrics = _clean_metrics(payload.get("metrics", {}))
    ValidationResult.objects.update_or_create(
        job=job,
        defaults={
            "model_version": job.model_version,
            "dataset": job.dataset,
            "split": config.get("split", "val"),
            "conf": config.get("conf", 0.001),
            "iou": config.get("iou", 0.7),
            "metrics": metrics,
            "per_class": per_class,
            "confusion_matrix": matrix,
            "curves": curves,
            "speed_ms": _clean_metrics(payload.get("speed_ms", {})),
        },
    )
    _touch(job, metrics=metrics, progress=99.0)
    return job_event_record(job=job, kind=EventKind.RESULTS, payload={"metrics": metrics, "per_class": per_class})


def _on_predictions(job, payload):
    """Store a batch of per-image results of an inference job (a resumed attempt's repeats are ignored)."""
    from serving.services import inference_results_store

    if job.kind != JobKind.INFER:
        raise ApplicationError("Only inference jobs report predictions.")
    results = payload.get("results")
    if not isinstance(results, list) or not results:
        raise ApplicationError("'results' must be a non-empty list.", fields={"results": ["Expected a list."]})
    stored, total = inference_results_store(job=job, results=results)
    progress = round(min(99.0, 100.0 * stored / max(total, 1)), 2)
    _touch(job, progress=progress)
    return job_event_record(
        job=job,
        kind=EventKind.PREDICTIONS,
        payload={"images_done": stored, "images": total, "progress": progress, "batch": len(results)},
    )


def _complete_inference(job, payload):
    stored = job.inference_results.count()
    total = len(job.config.get("inputs", []))
    if stored < total:
        raise ConflictError(f"Inference job {job.pk} completed with {stored} of {total} images reported.")
    metrics = {**job.metrics, "images": float(total)}  # the CLI's `done` adds its throughput
    _complete(job, metrics)
    return job_event_record(job=job, kind=EventKind.COMPLETED, payload={"metrics": metrics, "progress": 100.0})


def _complete(job, metrics):
    now = timezone.now()
    updated = Job.objects.filter(
        pk=job.pk, fencing_token=job.fencing_token, status__in=[JobStatus.RUNNING, JobStatus.CANCELLING]
    ).update(
        status=JobStatus.COMPLETED,
        progress=100.0,
        metrics=metrics,
        finished_at=now,
        last_heartbeat_at=now,
        eta_seconds=0,
    )
    if not updated:
        raise ConflictError(f"Job {job.pk} changed while completing.")
    _attempt_close(job.pk, job.attempt, AttemptOutcome.COMPLETED, exit_code=0)
    job.refresh_from_db()


def _on_completed(job, payload):
    if job.kind == JobKind.VALIDATE:
        return _complete_validation(job, payload)
    if job.kind == JobKind.EXPORT:
        return _complete_export(job, payload)
    if job.kind == JobKind.INFER:
        return _complete_inference(job, payload)
    from models_registry.services import model_version_create_from_job

    artifact = payload.get("artifact")
    sha256 = payload.get("sha256")
    if not isinstance(artifact, str) or not artifact or not isinstance(sha256, str) or len(sha256) != 64:
        raise ApplicationError("'artifact' and 'sha256' are required.", fields={"artifact": ["Required."]})
    _own_stored_file(job, artifact, "artifact")
    metrics = _clean_metrics(payload.get("metrics", job.metrics))
    _complete(job, metrics)
    version = model_version_create_from_job(
        job=job, artifact_name=artifact, artifact_sha256=sha256, artifact_size=_number(payload, "size"), metrics=metrics
    )
    event = job_event_record(
        job=job, kind=EventKind.COMPLETED, payload={"model_version": version.pk, "metrics": metrics, "progress": 100.0}
    )
    if job.config.get("validate_after", True):
        _validate_new_version(job, version)
    return event


def _validate_new_version(job, version):
    """Queue the automatic validation; its refusal never undoes the training's completion."""
    from jobs.services import validation_job_create

    try:
        with transaction.atomic():
            validation_job_create(
                owner=job.owner,
                model_version=version,
                dataset=job.dataset,
                config={"split": "val", "conf": 0.001, "iou": 0.7, "queue": job.queue, "priority": job.priority},
            )
    except ApplicationError as exc:
        job_event_record(job=job, kind=EventKind.LOG, payload={"lines": [f"automatic validation not started: {exc}"]})


def _complete_export(job, payload):
    from models_registry.models import ModelArtifact

    sha256 = payload.get("sha256")
    if not isinstance(sha256, str) or len(sha256) != 64:
        raise ApplicationError("'sha256' is required.", fields={"sha256": ["Required."]})
    artifact = ModelArtifact.objects.create(
        version=job.model_version,
        format=job.config["format"],
        file=_own_stored_file(job, payload.get("artifact"), "artifact"),
        sha256=sha256,
        size=int(_number(payload, "size")),
        job=job,
    )
    _complete(job, {})
    return job_event_record(
        job=job,
        kind=EventKind.COMPLETED,
        payload={"export": artifact.pk, "format": artifact.format, "sha256": sha256, "size": artifact.size},
    )


def _complete_validation(job, payload):
    result = ValidationResult.objects.filter(job=job).first()
    if result is None:
        raise ConflictError(f"Validation job {job.pk} completed without reporting results.")
    image = payload.get("confusion_matrix_image")
    if image:
        result.confusion_matrix_image = _own_stored_file(job, image, "confusion_matrix_image")
    gallery = payload.get("gallery") or []
    if not isinstance(gallery, list):
        raise ApplicationError("'gallery' must be a list of stored names.", fields={"gallery": ["Expected a list."]})
    result.gallery = [_own_stored_file(job, name, "gallery") for name in gallery[:50]]
    result.save(update_fields=["confusion_matrix_image", "gallery"])
    _complete(job, result.metrics)
    return job_event_record(
        job=job, kind=EventKind.COMPLETED, payload={"validation_result": result.pk, "metrics": result.metrics}
    )


_HANDLERS = {
    "started": _on_started,
    "progress": _on_progress,
    "epoch": _on_epoch,
    "log": _on_log,
    "checkpoint": _on_checkpoint,
    "results": _on_results,
    "predictions": _on_predictions,
    "done": _on_done,
    "failed": _on_failed,
    "completed": _on_completed,
    "cancelled": _on_cancelled,
    "crashed": _on_crashed,
}
