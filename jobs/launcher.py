"""Runs one claimed training job on this worker: prepare, launch, watch, finalize.

The trainer runs as a subprocess so that cancelling (or losing the lease)
kills it and frees the GPU for sure. While it lives, the launcher renews the
job's lease; when it exits, the launcher stores the best checkpoint and reports
the outcome through the same callback endpoint the trainer uses, so the web
tier persists and broadcasts it like any other event.
"""

import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import requests
import yaml
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from datasets.cache import dataset_local_copy
from jobs import callbacks, services
from jobs.choices import JobStatus
from portal.errors import ApplicationError
from portal.processes import die_with_parent

logger = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10


def callback_url(job_id):
    return f"{settings.PORTAL_URL.rstrip('/')}/api/v1/training-jobs/{job_id}/callbacks/"


def job_work_dir(job):
    return Path(settings.WORK_DIR) / "jobs" / str(job.pk)


def _write_data_yaml(dataset_root, work_dir, classes):
    """The server writes data.yaml itself: only the class names come from the user."""
    document = {
        "path": str(dataset_root),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(classes)),
    }
    data_yaml = work_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    return data_yaml


def trainer_environment(job, token, data_yaml, work_dir):
    config = job.config
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"}
        or key.startswith(("NVIDIA_", "OPENBLAS_"))
    }
    env.update(
        {
            "PYTHONPATH": str(settings.BASE_DIR),
            "PYTHONUNBUFFERED": "1",
            "YOLO_OFFLINE": "true",
            "YOLO_CONFIG_DIR": str(work_dir / ".ultralytics"),
            "MPLCONFIGDIR": str(work_dir / ".matplotlib"),
            "JOB_ID": str(job.pk),
            "CALLBACK_URL": callback_url(job.pk),
            "CALLBACK_TOKEN": token,
            "FENCING_TOKEN": str(job.fencing_token),
            "DATA_YAML": str(data_yaml),
            "OUTPUT_PATH": str(work_dir / f"attempt-{job.attempt}"),
            "MODEL_NAME": config.get("model", "yolo11n"),
            "EPOCHS": str(config["epochs"]),
            "IMGSZ": str(config.get("imgsz", 640)),
            "BATCH_SIZE": str(config.get("batch", 16)),
            "DEVICE": config.get("device", ""),
            "SEED": str(config.get("seed", 0)),
            "PATIENCE": str(config.get("patience", 100)),
            "WORKERS": str(config.get("workers", 2)),
        }
    )
    return env


def _report(job_id, token, payload):
    """Send an outcome through the callback endpoint; fall back to the service if the web tier is down."""
    try:
        response = requests.post(
            callback_url(job_id), json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        if response.status_code < 500:
            if response.status_code >= 400:
                logger.warning("job %s: callback %s refused: %s", job_id, payload["type"], response.text[:500])
            return
    except requests.RequestException as exc:
        logger.warning("job %s: web tier unreachable (%s); recording %s directly", job_id, exc, payload["type"])
    try:
        callbacks.training_job_callback(job_id=job_id, token=token, payload=payload)
    except ApplicationError as exc:
        logger.warning("job %s: %s refused: %s", job_id, payload["type"], exc)


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _store_artifact(job, path):
    sha256 = _sha256_file(path)
    name = f"models/job-{job.pk}/attempt-{job.attempt}/best-{sha256[:12]}.pt"
    with open(path, "rb") as handle:
        stored = default_storage.save(name, File(handle))
    return stored, sha256, path.stat().st_size


def _log_tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(process):
    """SIGTERM the trainer's process group, then SIGKILL it after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def training_job_execute(job_id):
    """Claim and run a job to its end on this worker."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    claim = services.training_job_claim(job_id=job_id, worker=worker)
    if claim is None:
        logger.info("job %s is not queued any more; nothing to do", job_id)
        return
    job, token = claim
    fence = job.fencing_token
    work_dir = job_work_dir(job)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        dataset_root = dataset_local_copy(job.dataset)
        data_yaml = _write_data_yaml(dataset_root, work_dir, job.dataset.classes)
    except Exception as exc:  # noqa: BLE001 - any preparation failure fails the job with its reason
        logger.exception("job %s: preparation failed", job_id)
        services.training_job_fail(job_id=job_id, fencing_token=fence, error=f"preparing the job failed: {exc}")
        return
    env = trainer_environment(job, token, data_yaml, work_dir)
    output = Path(env["OUTPUT_PATH"])
    log_path = work_dir / f"attempt-{job.attempt}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [settings.TRAINER_PYTHON, "-m", "trainers.ultralytics.train"],
            cwd=work_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    cancelled = lease_lost = False
    while True:
        try:
            process.wait(timeout=settings.JOB_LEASE_RENEW_SECONDS)
            break
        except subprocess.TimeoutExpired:
            pass
        status = services.training_job_renew_lease(job_id=job_id, fencing_token=fence)
        if status is None:
            lease_lost = True
            _stop(process)
            break
        if status == JobStatus.CANCELLING:
            cancelled = True
            _stop(process)
            break
    _store_log(job, log_path)
    if lease_lost:
        logger.warning("job %s: lease lost to another attempt; trainer stopped", job_id)
        return
    if cancelled:
        _report(job_id, token, {"type": "cancelled", "fencing_token": fence})
        return
    best = output / "run" / "weights" / "best.pt"
    if process.returncode == 0 and best.is_file():
        artifact, sha256, size = _store_artifact(job, best)
        job.refresh_from_db()
        _report(
            job_id,
            token,
            {
                "type": "completed",
                "fencing_token": fence,
                "artifact": artifact,
                "sha256": sha256,
                "size": size,
                "metrics": job.metrics,
            },
        )
    else:
        reason = f"the trainer exited with code {process.returncode}"
        if process.returncode == 0:
            reason = "the trainer exited without writing best.pt"
        _report(job_id, token, {"type": "failed", "fencing_token": fence, "error": f"{reason}\n{_log_tail(log_path)}"})
    shutil.rmtree(output, ignore_errors=True)


def _store_log(job, log_path):
    try:
        with open(log_path, "rb") as handle:
            default_storage.save(f"logs/job-{job.pk}/attempt-{job.attempt}.log", File(handle))
    except OSError:
        logger.warning("job %s: could not store the log", job.pk, exc_info=True)
