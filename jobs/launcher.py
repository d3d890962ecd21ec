"""Runs one claimed job on this worker: prepare, launch, watch, finalize.

The trainer (or evaluator) runs as a subprocess, so cancelling or losing the
lease kills it and frees the GPU for sure. While it lives the launcher polls
the job every second (cancel within seconds), renews the lease, ships new log
lines, and syncs the checkpoints the trainer publishes to storage. When it
exits, the launcher stores the outputs and reports the outcome through the
same callback endpoint the trainer uses, so the web tier persists and
broadcasts it like any other event. A trainer that died without reporting
(killed, out of memory) is a crash: the job is re-queued and resumes from its
newest checkpoint that loads.
"""

import codecs
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests
import yaml
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from datasets.cache import dataset_local_copy
from jobs import callbacks, services
from jobs.choices import CheckpointKind, JobKind, JobStatus
from jobs.devices import worker_device_description
from jobs.models import Checkpoint
from portal.errors import ApplicationError
from portal.processes import die_with_parent

logger = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 10
POLL_SECONDS = 1.0
LOG_SHIP_SECONDS = 5.0
KEEP_LAST_CHECKPOINTS = 2
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CHECKPOINT_NAME = re.compile(r"^(last|best)-e(\d{4,})\.pt$")


def callback_url(job_id):
    return f"{settings.PORTAL_URL.rstrip('/')}/api/v1/jobs/{job_id}/callbacks/"


def job_work_dir(job):
    return Path(settings.WORK_DIR) / "jobs" / str(job.pk)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def data_source(dataset_root, work_dir, dataset):
    """What Ultralytics gets as `data`: a server-written data.yaml, or the folder for classification.

    Only the class names come from the user; paths are the server's.
    """
    if dataset.task == "classify":
        return dataset_root
    document = {
        "path": str(dataset_root),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(dataset.classes)),
    }
    data_yaml = work_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    return data_yaml


def stored_file_local_copy(name, sha256, folder):
    """A stored file in a node-local cache keyed by its sha256; None if the bytes do not match."""
    target = Path(folder) / f"{sha256}{Path(name).suffix}"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as source, open(tmp, "wb") as sink:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
            sink.write(chunk)
    if digest.hexdigest() != sha256:
        tmp.unlink()
        logger.warning("stored file %s does not match its sha256; skipped", name)
        return None
    os.replace(tmp, target)
    return target


def _report(job_id, token, payload):
    """Send an outcome through the callback endpoint; fall back to the service if the web tier is down."""
    try:
        response = requests.post(
            callback_url(job_id), json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        if response.status_code < 500:
            if response.status_code >= 400:
                logger.warning("job %s: callback %s refused: %s", job_id, payload["type"], response.text[:500])
            return response.status_code < 400
    except requests.RequestException as exc:
        logger.warning("job %s: web tier unreachable (%s); recording %s directly", job_id, exc, payload["type"])
    try:
        callbacks.job_callback(job_id=job_id, token=token, payload=payload)
        return True
    except ApplicationError as exc:
        logger.warning("job %s: %s refused: %s", job_id, payload["type"], exc)
        return False


def _stop(process):
    """SIGTERM the child's process group, then SIGKILL it after a grace period."""
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


class LogShipper:
    """Sends new lines of the child's log to the portal, at most one batch every few seconds."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.last_sent = 0.0
        self.partial = ""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def lines(self):
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(256 * 1024)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        text = self.partial + self.decoder.decode(data)
        *complete, self.partial = text.split("\n")
        cleaned = []
        for line in complete:
            line = _ANSI.sub("", line.split("\r")[-1]).rstrip()
            if line:
                cleaned.append(line)
        return cleaned

    def ship(self, send, *, force=False):
        if not force and time.monotonic() - self.last_sent < LOG_SHIP_SECONDS:
            return
        self.last_sent = time.monotonic()
        lines = self.lines()
        for start in range(0, len(lines), 200):
            send({"type": "log", "lines": lines[start : start + 200]})


class JobRun:
    """One attempt of one job on this worker."""

    def __init__(self, job, token):
        self.job = job
        self.token = token
        self.fence = job.fencing_token
        self.work_dir = job_work_dir(job)
        self.output = self.work_dir / f"attempt-{job.attempt}"
        self.log_path = self.work_dir / f"attempt-{job.attempt}.log"
        self.synced = set()

    def send(self, payload):
        return _report(self.job.pk, self.token, {"fencing_token": self.fence, **payload})

    # --- preparation -------------------------------------------------------

    def _callback_env(self):
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
                "YOLO_CONFIG_DIR": str(self.work_dir / ".ultralytics"),
                "MPLCONFIGDIR": str(self.work_dir / ".matplotlib"),
                "JOB_ID": str(self.job.pk),
                "CALLBACK_URL": callback_url(self.job.pk),
                "CALLBACK_TOKEN": self.token,
                "FENCING_TOKEN": str(self.fence),
                "OUTPUT_PATH": str(self.output),
                "TASK": self.job.dataset.task,
                "DEVICE": self.job.config.get("device", ""),
                "IMGSZ": str(self.job.config.get("imgsz", 640)),
                "BATCH_SIZE": str(self.job.config.get("batch", 16)),
            }
        )
        return env

    def resume_candidates(self):
        """Local copies of this job's checkpoints, newest first, whose bytes match their sha256."""
        candidates = []
        cache = Path(settings.CACHE_DIR) / "checkpoints"
        for checkpoint in self.job.checkpoints.filter(kind=CheckpointKind.LAST).order_by("-epoch", "-id")[:3]:
            try:
                local = stored_file_local_copy(checkpoint.storage_name, checkpoint.sha256, cache)
            except OSError:
                logger.warning("job %s: checkpoint %s unreadable", self.job.pk, checkpoint.storage_name)
                continue
            if local is not None:
                candidates.append(str(local))
        return candidates

    def base_weights(self):
        config = self.job.config
        cache = Path(settings.CACHE_DIR) / "models"
        if self.job.model_version_id:
            version = self.job.model_version
            return stored_file_local_copy(version.artifact.name, version.artifact_sha256, cache)
        if config.get("base_model"):
            from models_registry.models import BaseModel

            base = BaseModel.objects.get(pk=config["base_model"])
            return stored_file_local_copy(base.weights.name, base.sha256, cache)
        return None

    def inference_inputs(self):
        """Copy the job's input images from storage into the work dir, named by their index."""
        folder = self.work_dir / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        for index, item in enumerate(self.job.config["inputs"]):
            target = folder / f"{index:06d}{Path(item['storage_name']).suffix.lower()}"
            if target.is_file():
                continue
            partial = target.with_name(f".{target.name}.part")  # a copy cut short is never taken for whole
            with default_storage.open(item["storage_name"], "rb") as source, open(partial, "wb") as sink:
                shutil.copyfileobj(source, sink)
            os.replace(partial, target)
        return folder

    def environment(self, data):
        env = self._callback_env()
        config = self.job.config
        if self.job.kind == JobKind.INFER:
            version = self.job.model_version
            weights = stored_file_local_copy(
                version.artifact.name, version.artifact_sha256, Path(settings.CACHE_DIR) / "models"
            )
            if weights is None:
                raise ValueError(f"the artifact of {version} does not match its sha256")
            env.update(
                {
                    "CHECKPOINT_PATH": str(weights),
                    "INPUT_DIR": str(self.inference_inputs()),
                    "IMGSZ": str(config.get("imgsz") or ""),  # blank: the checkpoint's training size
                    "CONFIDENCE_THRESHOLD": str(config.get("conf", 0.25)),
                    "IOU_THRESHOLD": str(config.get("iou", 0.7)),
                    "MAX_DET": str(config.get("max_det", 300)),
                    "CLASSES": ",".join(str(c) for c in config.get("classes") or []),
                    "REPORT_EVERY": str(config.get("report_every", 256)),
                }
            )
            return env, "trainers.ultralytics.predict"
        if self.job.kind == JobKind.EXPORT:
            version = self.job.model_version
            weights = stored_file_local_copy(
                version.artifact.name, version.artifact_sha256, Path(settings.CACHE_DIR) / "models"
            )
            if weights is None:
                raise ValueError(f"the artifact of {version} does not match its sha256")
            env.update({"CHECKPOINT_PATH": str(weights), "FORMAT": config["format"]})
            return env, "trainers.ultralytics.export"
        if self.job.kind == JobKind.VALIDATE:
            version = self.job.model_version
            weights = stored_file_local_copy(
                version.artifact.name, version.artifact_sha256, Path(settings.CACHE_DIR) / "models"
            )
            if weights is None:
                raise ValueError(f"the artifact of {version} does not match its sha256")
            env.update(
                {
                    "CHECKPOINT_PATH": str(weights),
                    "DATA_YAML": str(data),
                    "SPLIT": config.get("split", "val"),
                    "CONFIDENCE_THRESHOLD": str(config.get("conf", 0.001)),
                    "IOU_THRESHOLD": str(config.get("iou", 0.7)),
                }
            )
            return env, "trainers.ultralytics.evaluate"
        env.update(
            {
                "DATA_YAML": str(data),
                "MODEL_NAME": config.get("model", "yolo11n"),
                "EPOCHS": str(config["epochs"]),
                "SEED": str(config.get("seed", 0)),
                "PATIENCE": str(config.get("patience", 100)),
                "WORKERS": str(config.get("workers", 2)),
                "OPTIMIZER": config.get("optimizer", "auto"),
                "LR0": str(config.get("lr0", 0.01)),
                "AUGMENT": json.dumps(config.get("augment", {})),
                "RESUME_CANDIDATES": os.pathsep.join(self.resume_candidates()),
            }
        )
        weights = self.base_weights()
        if weights is not None:
            env["BASE_WEIGHTS"] = str(weights)
        return env, "trainers.ultralytics.train"

    # --- while the child runs ----------------------------------------------

    def sync_checkpoints(self):
        """Upload the checkpoints the trainer published (sidecar present) and record them."""
        folder = self.output / "checkpoints"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.pt")):
            match = _CHECKPOINT_NAME.match(path.name)
            sidecar = path.with_name(f"{path.name}.sha256")
            if not match or path.name in self.synced or not sidecar.is_file():
                continue
            expected = sidecar.read_text().split()[0]
            kind, epoch = match.group(1), int(match.group(2))
            name = f"jobs/{self.job.pk}/checkpoints/{kind}-e{epoch:04d}-{expected[:12]}.pt"
            if sha256_file(path) != expected:
                logger.warning("job %s: %s does not match its sidecar; not synced", self.job.pk, path)
                self.synced.add(path.name)
                continue
            with open(path, "rb") as handle:
                stored = default_storage.save(name, File(handle))
            self.synced.add(path.name)
            self.send(
                {
                    "type": "checkpoint",
                    "kind": kind,
                    "epoch": epoch,
                    "storage_name": stored,
                    "sha256": expected,
                    "size": path.stat().st_size,
                }
            )
            checkpoint_prune(self.job, keep_last=KEEP_LAST_CHECKPOINTS)
            if kind == CheckpointKind.LAST:
                for older in folder.glob("last-e*.pt"):
                    if older.name < path.name and older.name in self.synced:
                        older.unlink(missing_ok=True)
                        older.with_name(f"{older.name}.sha256").unlink(missing_ok=True)

    def watch(self, process):
        """Poll until the child exits; returns 'exited', 'cancelled' or 'lease_lost'."""
        shipper = LogShipper(self.log_path)
        next_renewal = time.monotonic() + settings.JOB_LEASE_RENEW_SECONDS
        while True:
            try:
                process.wait(timeout=POLL_SECONDS)
                outcome = "exited"
                break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() >= next_renewal:
                status = services.job_renew_lease(job_id=self.job.pk, fencing_token=self.fence)
                next_renewal = time.monotonic() + settings.JOB_LEASE_RENEW_SECONDS
            else:
                status = services.job_status_if_owned(job_id=self.job.pk, fencing_token=self.fence)
            if status is None:
                _stop(process)
                return "lease_lost"
            if status == JobStatus.CANCELLING:
                _stop(process)
                outcome = "cancelled"
                break
            self.sync_checkpoints()
            shipper.ship(self.send)
        self.sync_checkpoints()
        shipper.ship(self.send, force=True)
        return outcome

    # --- the whole attempt -------------------------------------------------

    def run(self):
        job = self.job
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            data = None
            if job.kind != JobKind.INFER:  # inference reads its own uploaded images, not a data set
                dataset_root = dataset_local_copy(job.dataset)
                data = data_source(dataset_root, self.work_dir, job.dataset)
            env, module = self.environment(data)
        except Exception as exc:  # noqa: BLE001 - any preparation failure fails the job with its reason
            logger.exception("job %s: preparation failed", job.pk)
            self.send({"type": "failed", "error": f"preparing the job failed: {exc}"})
            return
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                [settings.TRAINER_PYTHON, "-m", module],
                cwd=self.work_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        outcome = self.watch(process)
        self.store_log()
        if outcome == "lease_lost":
            logger.warning("job %s: lease lost to another attempt; child stopped", job.pk)
            return
        if outcome == "cancelled":
            self.send({"type": "cancelled"})
        elif process.returncode == 0:
            self.finish_success()
        elif process.returncode in (1, 2):
            tail = "\n".join(LogShipper(self.log_path).lines()[-40:])
            self.send(
                {
                    "type": "failed",
                    "exit_code": process.returncode,
                    "error": f"the {module.rsplit('.', 1)[-1]} CLI exited with code {process.returncode}\n{tail}",
                }
            )
        else:
            self.send(
                {"type": "crashed", "exit_code": process.returncode, "reason": _describe_exit(process.returncode)}
            )
        shutil.rmtree(self.output, ignore_errors=True)

    def finish_success(self):
        if self.job.kind == JobKind.INFER:
            self.send({"type": "completed"})
            return
        if self.job.kind == JobKind.EXPORT:
            produced = next((p for p in self.output.glob("model.*") if p.suffix in {".onnx", ".torchscript"}), None)
            if produced is None:
                self.send({"type": "failed", "error": "the exporter exited without writing a model file"})
                return
            sha256 = sha256_file(produced)
            with open(produced, "rb") as handle:
                artifact = default_storage.save(f"jobs/{self.job.pk}/export/{produced.name}", File(handle))
            self.send(
                {
                    "type": "completed",
                    "artifact": artifact,
                    "sha256": sha256,
                    "size": produced.stat().st_size,
                    "format": self.job.config["format"],
                }
            )
            return
        if self.job.kind == JobKind.VALIDATE:
            image = self.output / "confusion_matrix.png"
            payload = {"type": "completed", "gallery": []}
            if image.is_file():
                with open(image, "rb") as handle:
                    payload["confusion_matrix_image"] = default_storage.save(
                        f"jobs/{self.job.pk}/confusion_matrix.png", File(handle)
                    )
            for picture in sorted((self.output / "gallery").glob("*.jpg")):
                with open(picture, "rb") as handle:
                    payload["gallery"].append(
                        default_storage.save(f"jobs/{self.job.pk}/gallery/{picture.name}", File(handle))
                    )
            self.send(payload)
            return
        best = self.output / "run" / "weights" / "best.pt"
        if not best.is_file():
            self.send({"type": "failed", "error": "the trainer exited without writing best.pt"})
            return
        sha256 = sha256_file(best)
        with open(best, "rb") as handle:
            artifact = default_storage.save(f"jobs/{self.job.pk}/model/best-{sha256[:12]}.pt", File(handle))
        self.job.refresh_from_db()
        if self.send(
            {
                "type": "completed",
                "artifact": artifact,
                "sha256": sha256,
                "size": best.stat().st_size,
                "metrics": self.job.metrics,
            }
        ):
            checkpoint_prune(self.job, keep_last=0)

    def store_log(self):
        try:
            with open(self.log_path, "rb") as handle:
                default_storage.save(f"jobs/{self.job.pk}/logs/attempt-{self.job.attempt}.log", File(handle))
        except OSError:
            logger.warning("job %s: could not store the log", self.job.pk, exc_info=True)


def _describe_exit(code):
    if code < 0:
        try:
            return f"the trainer was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the trainer was killed by signal {-code}"
    return f"the trainer exited with code {code} without reporting"


def checkpoint_prune(job, *, keep_last):
    """Delete stored checkpoints beyond the newest `keep_last` 'last' ones and the newest 'best'."""
    lasts = list(job.checkpoints.filter(kind=CheckpointKind.LAST).order_by("-epoch", "-id"))
    bests = list(job.checkpoints.filter(kind=CheckpointKind.BEST).order_by("-epoch", "-id"))
    doomed = lasts[keep_last:] + (bests[1:] if keep_last else bests)
    for checkpoint in doomed:
        default_storage.delete(checkpoint.storage_name)
    Checkpoint.objects.filter(pk__in=[c.pk for c in doomed]).delete()


def job_execute(job_id):
    """Claim and run a job to its end on this worker."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    claim = services.job_claim(job_id=job_id, worker=worker, device=worker_device_description())
    if claim is None:
        logger.info("job %s is not queued any more; nothing to do", job_id)
        return
    job, token = claim
    JobRun(job, token).run()
