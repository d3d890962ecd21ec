"""Ingest: extract, validate, lay out, draw previews, store; one attempt at a time.

An attempt claims the data set (`ingest_attempt` += 1) and every write it makes
afterwards is conditional on still owning that attempt, so an attempt the
reaper gave up on cannot overwrite the outcome of the one that replaced it.
"""

import logging
import os
import shutil
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from datasets.archive import ArchiveRejected, archive_extract, archive_members, common_root
from datasets.cache import (
    archive_limits,
    cache_root,
    layout_sha256,
    manifest_store,
    stored_archive,
)
from datasets.choices import DatasetStatus, DatasetTask, IngestStage
from datasets.events import IngestProgress, IngestSuperseded, dataset_event_on_commit
from datasets.formats.common import is_image_name
from datasets.formats.yolo import LabelLimits
from datasets.models import Dataset, DatasetFile, dataset_storage_prefix
from datasets.previews import preview_choose, preview_render
from datasets.services.upload import _enqueue_ingest, dataset_storage_sweep
from datasets.validation import dataset_validate
from datasets.validation.images import inspect_image_bytes
from portal.errors import ApplicationError

logger = logging.getLogger(__name__)
UTF8_BOM = b"\xef\xbb\xbf"


def _threads():
    return settings.DATASET_INGEST_THREADS or min(8, os.cpu_count() or 1)


def _claim(dataset_id):
    """Start a new attempt; None when the data set is not being validated any more."""
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().filter(pk=dataset_id, status=DatasetStatus.VALIDATING).first()
        if dataset is None:
            return None
        dataset.ingest_attempt += 1
        dataset.heartbeat_at = timezone.now()
        dataset.stage, dataset.progress = IngestStage.QUEUED, 0.0
        dataset.save(update_fields=["ingest_attempt", "heartbeat_at", "stage", "progress"])
    return dataset


def dataset_ingest(*, dataset_id):
    """Ingest an uploaded data set; it ends `ready` or `invalid` with its report, never stuck."""
    dataset = _claim(dataset_id)
    if dataset is None:
        return Dataset.objects.get(pk=dataset_id)
    progress = IngestProgress(
        dataset_id=dataset.pk, attempt=dataset.ingest_attempt, interval=settings.DATASET_PROGRESS_INTERVAL_SECONDS
    )
    cache_root().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache_root(), prefix=".ingest-"))
    stored = []
    try:
        _ingest(dataset, progress, work, stored)
    except IngestSuperseded:
        logger.info("data set %s: attempt %s superseded; stopping", dataset.pk, dataset.ingest_attempt)
        _delete_stored(dataset, stored)
    except ArchiveRejected as exc:
        _delete_stored(dataset, stored)
        _finish_invalid(dataset, errors=[{"file": None, "line": None, "reason": str(exc)}])
    except Exception as exc:  # never leave a data set stuck in `validating`
        logger.exception("ingest of data set %s failed", dataset.pk)
        _delete_stored(dataset, stored)
        reason = f"ingest failed: {type(exc).__name__}: {exc}"
        _finish_invalid(dataset, errors=[{"file": None, "line": None, "reason": reason}])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dataset.refresh_from_db()
    return dataset


class _EarlyImageChecks:
    """Decodes images from the bytes extraction just wrote, on a few threads, while extraction goes on.

    At most a few images per thread wait in memory; validation then picks up
    the results instead of reading and decoding each image again.
    """

    def __init__(self, threads, max_pixels):
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.slots = threading.BoundedSemaphore(threads * 4)
        self.max_pixels = max_pixels
        self.futures = {}

    def on_file(self, relative, data):
        if data is None or not is_image_name(relative):
            return
        self.slots.acquire()
        future = self.pool.submit(inspect_image_bytes, data, self.max_pixels)
        future.add_done_callback(lambda _: self.slots.release())
        self.futures[relative] = future

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def _ingest(dataset, progress, work, stored):
    """Read the archive once: images are decoded from memory on threads while the small files
    (labels, names, annotations) are written to a scratch folder for validation. Nothing is laid
    out here: the node that trains builds the layout from the stored manifest (datasets.cache)."""
    limits = archive_limits()
    options = dataset.options or {}
    progress.stage(IngestStage.EXTRACTING)
    early = _EarlyImageChecks(_threads(), settings.IMAGE_MAX_PIXELS)
    try:
        with stored_archive(dataset, work) as archive:
            members = archive_members(archive, limits)
            root = common_root(info.filename for info in members)
            source = archive_extract(
                archive,
                work / "source",
                limits,
                members=members,
                progress=progress.bytes_update,
                on_file=early.on_file,
                in_memory=is_image_name,
            )
            progress.stage(IngestStage.VALIDATING)
            report = dataset_validate(
                source,
                files=[info.filename[len(root) :] for info in members],
                max_pixels=settings.IMAGE_MAX_PIXELS,
                max_error_ratio=settings.DATASET_MAX_ERROR_RATIO,
                val_ratio=options.get("val_ratio", settings.DATASET_DEFAULT_VAL_RATIO),
                split_seed=options.get("split_seed", 0),
                task=options.get("task"),
                threads=_threads(),
                label_limits=LabelLimits(
                    max_bytes=settings.DATASET_MAX_LABEL_BYTES, max_lines=settings.DATASET_MAX_LABEL_LINES
                ),
                max_annotation_bytes=settings.DATASET_MAX_ANNOTATION_BYTES,
                max_listed=settings.DATASET_MAX_REPORTED_PROBLEMS,
                progress=progress.update,
                image_facts=early.futures,
            )
            if report.fatal:
                _finish_invalid(dataset, report=report)
                return
            progress.stage(IngestStage.PREVIEWS)
            previews = _previews_store(dataset, report, archive, root, stored, progress)
    finally:
        early.close()
    progress.stage(IngestStage.STORING)
    manifest = _manifest(dataset, report, root, source)
    prefix = dataset_storage_prefix(dataset)
    manifest_name = manifest_store(dataset.archive.storage, f"{prefix}layout.json.gz", manifest)
    stored.append(manifest_name)
    _finish_ready(dataset, report, layout_hash=layout_sha256(manifest), manifest_name=manifest_name, previews=previews)


def _label_text(rows):
    return "".join(f"{class_id} {' '.join(f'{v:.6f}' for v in coords)}\n" for class_id, coords in rows)


def _manifest(dataset, report, root, source):
    """Which archive files go where, and the label files the portal writes itself (see datasets.cache)."""
    files, labels = [], {}
    for sample in report.samples:
        files.append([sample.path, sample.dst])
        if report.task == DatasetTask.CLASSIFY:
            continue
        if sample.generated:
            labels[sample.dst_label] = _label_text(sample.rows)
        elif sample.label:
            raw = (source / sample.label).read_bytes()
            if raw.startswith(UTF8_BOM):  # Ultralytics would read the BOM as part of the first class id
                labels[sample.dst_label] = raw[len(UTF8_BOM) :].decode("utf-8")
            else:
                files.append([sample.label, sample.dst_label])
    return {
        "version": 1,
        "archive_sha256": dataset.content_sha256,
        "root": root,
        "task": report.task,
        "classes": report.classes,
        "files": sorted(files, key=lambda pair: pair[1]),
        "labels": labels,
    }


def _previews_store(dataset, report, archive, root, stored, progress):
    """Draw and store thumbnails of a sample of each split; returns {image path: storage name}."""
    chosen = preview_choose(report.samples, report.classes, settings.DATASET_PREVIEWS_PER_SPLIT)
    if not chosen:
        return {}
    storage = dataset.archive.storage
    prefix = dataset_storage_prefix(dataset)
    reading = threading.Lock()

    with zipfile.ZipFile(archive) as source:

        def store(item):
            index, sample = item
            with reading:
                data = source.read(f"{root}{sample.path}")
            thumbnail = preview_render(
                data,
                task=report.task,
                rows=sample.rows,
                class_name=sample.class_name,
                classes=report.classes,
                size=settings.DATASET_PREVIEW_SIZE,
            )
            return sample.path, storage.save(f"{prefix}previews/{sample.split}/{index:05d}.jpg", ContentFile(thumbnail))

        previews = {}
        with ThreadPoolExecutor(max_workers=_threads()) as pool:
            for done, (path, name) in enumerate(pool.map(store, enumerate(chosen)), start=1):
                previews[path] = name
                stored.append(name)
                progress.update(done / len(chosen))
    return previews


def _file_rows(dataset, report, previews):
    rows = []
    for record in report.files.values():
        problems = record.problem_list()
        rows.append(
            DatasetFile(
                dataset=dataset,
                path=record.path,
                role=record.role,
                split=record.split,
                status=record.status,
                class_ids="".join(f",{i}" for i in sorted(record.class_ids)) + ("," if record.class_ids else ""),
                instances=record.instances,
                width=record.width,
                height=record.height,
                problems=problems,
                has_problems=bool(problems),
                preview=previews.get(record.path, ""),
            )
        )
    return rows


def _report_fields(report):
    stats = {
        **report.stats,
        "format": report.format,
        "excluded": sorted(set(report.excluded))[: settings.DATASET_MAX_REPORTED_PROBLEMS],
        "excluded_count": len(set(report.excluded)),
        "errors_count": report.errors_total + len(report.fatal),
        "warnings_count": report.warnings_total,
        "split": {"auto": report.auto_split},
    }
    return {
        "task": report.task or DatasetTask.DETECT,
        "format": report.format,
        "classes": report.classes,
        "num_images": report.num_images,
        "stats": stats,
        "errors": report.listed_errors(),
        "warnings": report.listed_warnings(),
    }


def _summary(dataset):
    return {
        "status": dataset.status,
        "task": dataset.task,
        "num_images": dataset.num_images,
        "classes": dataset.classes,
        "errors_count": len(dataset.errors),
        "warnings_count": len(dataset.warnings),
    }


def _finish(dataset, status, fields, file_rows):
    now = timezone.now()
    updated = Dataset.objects.filter(
        pk=dataset.pk, status=DatasetStatus.VALIDATING, ingest_attempt=dataset.ingest_attempt
    ).update(status=status, stage=IngestStage.DONE, progress=100.0, validated_at=now, heartbeat_at=now, **fields)
    if not updated:
        raise IngestSuperseded(f"data set {dataset.pk}: attempt {dataset.ingest_attempt} was superseded")
    DatasetFile.objects.bulk_create(file_rows, batch_size=1000)
    dataset.refresh_from_db()


def _finish_ready(dataset, report, *, layout_hash, manifest_name, previews):
    fields = {**_report_fields(report), "layout_sha256": layout_hash, "manifest": manifest_name}
    with transaction.atomic():
        _finish(dataset, DatasetStatus.READY, fields, _file_rows(dataset, report, previews))
        if dataset.auto_train:
            _auto_train(dataset)
        dataset_event_on_commit(dataset_id=dataset.pk, kind="ready", payload=_summary(dataset))


def _finish_invalid(dataset, *, report=None, errors=None):
    """Invalid: the report stays (and the file list); the archive is not kept."""
    fields = _report_fields(report) if report is not None else {"errors": errors}
    storage, prefix = dataset.archive.storage, dataset_storage_prefix(dataset)
    try:
        with transaction.atomic():
            _finish(
                dataset,
                DatasetStatus.INVALID,
                {**fields, "archive": ""},
                _file_rows(dataset, report, {}) if report else [],
            )
            transaction.on_commit(lambda: dataset_storage_sweep(storage, prefix))
            dataset_event_on_commit(dataset_id=dataset.pk, kind="invalid", payload=_summary(dataset))
    except IngestSuperseded:
        logger.info("data set %s: attempt %s superseded; outcome dropped", dataset.pk, dataset.ingest_attempt)


def _auto_train(dataset):
    """Start a training job with the default configuration; a refusal becomes a warning on the data set."""
    from jobs.api.serializers import TrainingConfigSerializer
    from jobs.services import training_job_create

    serializer = TrainingConfigSerializer(data={"dataset": dataset.pk})
    try:
        serializer.is_valid(raise_exception=True)
        config = {k: v for k, v in serializer.validated_data.items() if k != "dataset"}
        with transaction.atomic():
            job = training_job_create(owner=dataset.owner, dataset=dataset, config=config)
        dataset.stats = {**dataset.stats, "auto_train_job": job.pk}
    except (ApplicationError, Exception) as exc:  # noqa: BLE001 - the data set is ready either way
        logger.warning("data set %s: auto-train refused: %s", dataset.pk, exc)
        dataset.warnings = [
            *dataset.warnings,
            {"file": None, "line": None, "reason": f"auto-train did not start: {exc}"},
        ]
    Dataset.objects.filter(pk=dataset.pk).update(stats=dataset.stats, warnings=dataset.warnings)


def _delete_stored(dataset, names):
    for name in names:
        try:
            dataset.archive.storage.delete(name)
        except Exception:  # noqa: BLE001 - best effort; the row decides what exists
            logger.warning("could not delete %s", name, exc_info=True)


def dataset_ingests_reap(*, now=None):
    """Re-queue ingests that stopped making progress (worker lost), or fail them after the last attempt."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.DATASET_INGEST_STALE_SECONDS)
    stuck = Dataset.objects.filter(status=DatasetStatus.VALIDATING).filter(
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True, created_at__lt=stale_before)
    )
    requeued = failed = 0
    for dataset in stuck:
        if dataset.ingest_attempt < settings.DATASET_INGEST_MAX_ATTEMPTS:
            touched = Dataset.objects.filter(
                pk=dataset.pk, status=DatasetStatus.VALIDATING, ingest_attempt=dataset.ingest_attempt
            ).update(heartbeat_at=now)
            if touched:
                transaction.on_commit(lambda pk=dataset.pk: _enqueue_ingest(pk))
                requeued += 1
            continue
        reason = (
            f"ingest stopped {dataset.ingest_attempt} times without finishing (was the worker stopped?); "
            "upload the archive again"
        )
        _finish_invalid(dataset, errors=[{"file": None, "line": None, "reason": reason}])
        failed += 1
    return requeued, failed
