"""Writes for data sets."""

import hashlib
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from datasets.archive import ArchiveRejected, archive_members
from datasets.cache import archive_limits, dataset_local_copy
from datasets.choices import DatasetStatus
from datasets.models import Dataset
from datasets.validation import dataset_validate
from portal.errors import ApplicationError, ConflictError

logger = logging.getLogger(__name__)


def _sha256_of(file):
    digest = hashlib.sha256()
    file.seek(0)
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def dataset_create(*, owner, name, file):
    """Check an uploaded zip, store it, and queue its ingest.

    The archive's structure is checked before anything is stored, so a hostile
    upload is refused at once and leaves no file and no row behind.
    """
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A data set needs a name.", fields={"name": ["This field is required."]})
    if file.size > settings.DATASET_MAX_UPLOAD_BYTES:
        raise ApplicationError(
            f"The upload is {file.size} bytes; the limit is {settings.DATASET_MAX_UPLOAD_BYTES}.",
            code="too_large",
            fields={"file": ["File too large."]},
        )
    try:
        file.seek(0)
        archive_members(file, archive_limits())
    except ArchiveRejected as exc:
        raise ApplicationError(
            f"The archive was refused: {exc}", code="archive_rejected", fields={"file": [str(exc)]}
        ) from exc
    content_sha256 = _sha256_of(file)
    dataset = Dataset(owner=owner, name=name, upload_uuid=uuid.uuid4(), archive_size=file.size)
    dataset.content_sha256 = content_sha256
    try:
        with transaction.atomic():
            dataset.archive.save("archive.zip", file, save=False)
            dataset.save()
            transaction.on_commit(lambda: _enqueue_ingest(dataset.pk))
    except Exception:
        if dataset.archive.name:
            dataset.archive.storage.delete(dataset.archive.name)
        raise
    return dataset


def _enqueue_ingest(dataset_id):
    from datasets.tasks import dataset_ingest_task

    dataset_ingest_task.delay(dataset_id)


def dataset_ingest(*, dataset_id):
    """Extract the archive into this node's cache and validate it."""
    dataset = Dataset.objects.get(pk=dataset_id)
    if dataset.status != DatasetStatus.VALIDATING:
        return dataset
    try:
        root = dataset_local_copy(dataset)
        report = dataset_validate(root, max_pixels=settings.IMAGE_MAX_PIXELS)
    except ArchiveRejected as exc:
        _dataset_finish(dataset, DatasetStatus.INVALID, errors=[{"file": None, "line": None, "reason": str(exc)}])
        dataset.archive.storage.delete(dataset.archive.name)
        return dataset
    except Exception as exc:  # never leave a data set stuck in `validating`
        logger.exception("ingest of data set %s failed", dataset_id)
        _dataset_finish(
            dataset,
            DatasetStatus.INVALID,
            errors=[{"file": None, "line": None, "reason": f"ingest failed: {type(exc).__name__}: {exc}"}],
        )
        return dataset
    status = DatasetStatus.INVALID if report.fatal else DatasetStatus.READY
    _dataset_finish(
        dataset,
        status,
        errors=report.fatal + report.errors,
        classes=report.classes,
        num_images=report.num_images,
        stats={**report.stats, "excluded": sorted(set(report.excluded))},
    )
    return dataset


def _dataset_finish(dataset, status, **fields):
    updated = Dataset.objects.filter(pk=dataset.pk, status=DatasetStatus.VALIDATING).update(
        status=status, validated_at=timezone.now(), **fields
    )
    if not updated:
        raise ConflictError(f"Data set {dataset.pk} is no longer being validated.")
    dataset.refresh_from_db()


def dataset_delete(*, dataset):
    """Delete a data set and its archive; refused while a job uses it."""
    if dataset.jobs.exists():
        raise ConflictError(
            f"Data set {dataset.pk} is used by {dataset.jobs.count()} job(s) and cannot be deleted."
        )
    name = dataset.archive.name
    storage = dataset.archive.storage
    with transaction.atomic():
        dataset.delete()
        transaction.on_commit(lambda: storage.delete(name))
