"""Train an Ultralytics YOLO model and report to the portal over HTTP callbacks.

Run as ``python -m trainers.ultralytics.train`` with the configuration in
environment variables (see :class:`trainers.config.TrainConfig`). The model is
built from its YAML (``yolo11n`` means ``yolo11n.yaml``): nothing is downloaded.
Exit codes: 0 trained, 1 failed (reported), 2 bad configuration.
"""

import functools
import hashlib
import logging
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "true")  # no connectivity checks, no downloads

from trainers.config import ConfigError, TrainConfig  # noqa: E402
from trainers.reporting import PortalReporter, run_reported  # noqa: E402

logger = logging.getLogger("trainers.ultralytics.train")

_METRIC_NAMES = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
}


def normalise_metrics(raw):
    """Map Ultralytics' metric keys to the portal's names (losses keep their split prefix)."""
    metrics = {}
    for key, value in (raw or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        metrics[_METRIC_NAMES.get(key, key)] = round(number, 6)
    return metrics


@functools.cache
def _cuda_available():
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - reporting memory must never break training
        return False


def _gpu_memory_mb():
    """GPU memory reserved by this process, or None on a CPU (asked once, not every batch)."""
    if not _cuda_available():
        return None
    import torch

    return round(torch.cuda.memory_reserved() / 2**20, 1)


def copy_atomically(source, folder, name):
    """Copy a checkpoint under a temporary name and rename it into place.

    Ultralytics rewrites last.pt in place every epoch, so a reader of last.pt
    itself could see a torn file; the copy is whole once it has its name. No
    fsync: the launcher uploads it to storage, which is what a resume on
    another node reads.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    tmp = folder / f".{name}.tmp"
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target


def write_sidecar(target):
    """Mark a published checkpoint complete: ``<name>.sha256`` holds its digest and size.

    The launcher syncs only files with a sidecar, so a file without one is never trusted.
    """
    digest = hashlib.sha256()
    size = 0
    with open(target, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    sidecar_tmp = target.with_name(f".{target.name}.sha256.tmp")
    sidecar_tmp.write_text(f"{digest.hexdigest()} {size}\n")
    os.replace(sidecar_tmp, target.with_name(f"{target.name}.sha256"))
    return target


def publish_checkpoint(source, folder, name):
    """Copy a checkpoint atomically and write its sidecar (both before returning)."""
    return write_sidecar(copy_atomically(source, folder, name))


def pick_resume_checkpoint(candidates):
    """Return (path, epochs_done) of the first candidate that loads as a resumable checkpoint."""
    import torch

    for candidate in candidates:
        try:
            checkpoint = torch.load(candidate, map_location="cpu", weights_only=False)
            epoch = int(checkpoint.get("epoch", -1))
            if epoch < 0 or checkpoint.get("optimizer") is None:
                raise ValueError("not a resumable checkpoint (finished or stripped)")
            return candidate, epoch + 1
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file is skipped, the next one tried
            logger.warning("checkpoint %s does not load, trying the previous one: %s", candidate, exc)
    return None, 0


class TrainingReporter:
    """The Ultralytics callbacks of one run, registered from one place."""

    def __init__(self, reporter, epochs, checkpoint_dir=None):
        self.reporter = reporter
        self.epochs = epochs
        self.checkpoint_dir = checkpoint_dir
        # Hashing a checkpoint happens off the training loop; the copy itself must not.
        self.hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-hash")
        self.batch_index = 0
        self.epoch_started = time.monotonic()
        self.epoch_durations = []
        self.last_epoch = 0

    def register(self, model):
        model.add_callback("on_train_start", self.on_train_start)
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        model.add_callback("on_train_batch_end", self.on_train_batch_end)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)
        model.add_callback("on_model_save", self.on_model_save)

    def _eta(self, epochs_left_fraction):
        if not self.epoch_durations:
            return None
        per_epoch = sum(self.epoch_durations) / len(self.epoch_durations)
        return round(per_epoch * epochs_left_fraction, 1)

    def on_train_start(self, trainer):
        import torch
        import ultralytics

        payload = {"device": str(trainer.device), "torch": torch.__version__, "ultralytics": ultralytics.__version__}
        if trainer.start_epoch:
            payload["resumed_from_epoch"] = trainer.start_epoch
        memory = _gpu_memory_mb()
        if memory is not None:
            payload["gpu_memory_mb"] = memory
        self.reporter.send("started", **payload)

    def on_train_epoch_start(self, trainer):
        self.batch_index = 0
        self.epoch_started = time.monotonic()

    def on_train_batch_end(self, trainer):
        self.batch_index += 1
        batches = max(len(trainer.train_loader), 1)
        remaining = self.epochs - trainer.epoch - self.batch_index / batches
        fields = {"epoch": trainer.epoch + 1, "batch": self.batch_index, "batches": batches}
        eta = self._eta(remaining)
        if eta is None and self.batch_index:
            elapsed = time.monotonic() - self.epoch_started
            eta = round(elapsed / self.batch_index * batches * remaining, 1)
        fields["eta_seconds"] = eta
        memory = _gpu_memory_mb()
        if memory is not None:
            fields["gpu_memory_mb"] = memory
        self.reporter.progress(**fields)

    def on_model_save(self, trainer):
        """Publish last.pt (and best.pt when it improved) for the launcher to sync to storage."""
        if self.checkpoint_dir is None:
            return
        epoch = trainer.epoch + 1
        if not Path(trainer.last).is_file():
            return
        last = copy_atomically(trainer.last, self.checkpoint_dir, f"last-e{epoch:04d}.pt")
        self.hasher.submit(write_sidecar, last)
        if trainer.best_fitness is not None and trainer.fitness == trainer.best_fitness:
            # Ultralytics wrote the same bytes to best.pt; our copies are never rewritten, so a link is safe.
            best = self.checkpoint_dir / f"best-e{epoch:04d}.pt"
            os.link(last, best)
            self.hasher.submit(write_sidecar, best)

    def on_fit_epoch_end(self, trainer):
        epoch = trainer.epoch + 1
        if epoch <= self.last_epoch or epoch > self.epochs:
            return  # Ultralytics fires this again for the final validation of best.pt
        self.last_epoch = epoch
        self.epoch_durations.append(time.monotonic() - self.epoch_started)
        metrics = normalise_metrics(trainer.label_loss_items(trainer.tloss, prefix="train"))
        metrics.update(normalise_metrics(trainer.metrics))
        for index, group in enumerate(getattr(trainer.optimizer, "param_groups", [])[:1]):
            metrics[f"lr/pg{index}"] = round(float(group["lr"]), 8)
        self.reporter.post(
            "epoch",
            epoch=epoch,
            epochs=self.epochs,
            metrics=metrics,
            eta_seconds=self._eta(self.epochs - epoch),
            epoch_seconds=round(self.epoch_durations[-1], 4),
        )
        summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if not k.startswith("lr/"))
        self.reporter.post("log", lines=[f"epoch {epoch}/{self.epochs}: {summary}"])


def train(config, reporter):
    """Train with Ultralytics; returns the final validation metrics of the best checkpoint."""
    from ultralytics import YOLO

    output = Path(config.output_path)
    resume_path, done = pick_resume_checkpoint(config.resume_candidates)
    common = {
        "data": config.data_yaml,
        "imgsz": config.imgsz,
        "batch": config.batch,
        "device": config.device or None,
        "workers": config.workers,
        "plots": False,
        "save_dir": str(output / "run"),
    }
    if resume_path:
        logger.info("resuming from %s (%d epochs done)", resume_path, done)
        model = YOLO(resume_path)
        callbacks = TrainingReporter(reporter, config.epochs, output / "checkpoints")
        callbacks.register(model)
        model.train(resume=resume_path, **common)
    else:
        model = YOLO(config.base_weights or config.model_yaml, task=config.task)
        callbacks = TrainingReporter(reporter, config.epochs, output / "checkpoints")
        callbacks.register(model)
        model.train(
            epochs=config.epochs,
            seed=config.seed,
            deterministic=True,
            patience=config.patience,
            optimizer=config.optimizer,
            lr0=config.lr0,
            amp=(config.device or "cpu") != "cpu",
            verbose=False,
            exist_ok=True,
            **config.augment,
            **common,
        )
    callbacks.hasher.shutdown(wait=True)
    return normalise_metrics(model.trainer.metrics)


def main(env=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = TrainConfig.from_env(env)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(config.output_path) / ".ultralytics"))
    reporter = PortalReporter(config.callback_url, config.callback_token, config.fencing_token)

    def work():
        metrics = train(config, reporter)
        reporter.flush()
        reporter.send("done", metrics=metrics)

    return run_reported(reporter, work)


if __name__ == "__main__":
    sys.exit(main())
