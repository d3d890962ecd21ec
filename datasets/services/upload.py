"""Uploading and deleting data sets."""

import hashlib
import json
import uuid
from collections import Counter

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.db.models.deletion import ProtectedError

from datasets.archive import ArchiveRejected, archive_members
from datasets.cache import archive_limits, dataset_cache_remove
from datasets.choices import DatasetStatus, DatasetTask
from datasets.models import Dataset, dataset_storage_prefix
from portal.errors import ApplicationError, ConflictError

_CHUNK = 1024 * 1024
VERSION_RETRIES = 5


def _sha256_of(file):
    digest = hashlib.sha256()
    file.seek(0)
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def dataset_options(*, val_ratio=None, split_seed=None, task=None):
    """The upload options that shape the layout, validated, with defaults filled in."""
    val_ratio = settings.DATASET_DEFAULT_VAL_RATIO if val_ratio is None else float(val_ratio)
    if not 0.01 <= val_ratio <= 0.9:
        raise ApplicationError(
            "val_ratio must be between 0.01 and 0.9.", fields={"val_ratio": ["Between 0.01 and 0.9."]}
        )
    split_seed = 0 if split_seed is None else int(split_seed)
    if split_seed < 0:
        raise ApplicationError("split_seed must be 0 or more.", fields={"split_seed": ["0 or more."]})
    if task not in (None, "", *DatasetTask.values):
        raise ApplicationError(f"Unknown task {task!r}.", fields={"task": [f"One of {', '.join(DatasetTask.values)}."]})
    return {"val_ratio": val_ratio, "split_seed": split_seed, "task": task or None}


def upload_fingerprint(content_sha256, options):
    """Identical content uploaded with the same options gives the same data set."""
    return hashlib.sha256(f"{content_sha256}:{json.dumps(options, sort_keys=True)}".encode()).hexdigest()


def dataset_create(
    *, owner, name, file, val_ratio=None, split_seed=None, task=None, auto_train=None, content_sha256=None
):
    """Check an uploaded zip, store it, and queue its ingest. Returns (dataset, created).

    The archive's structure is checked before anything is stored, so a hostile
    upload is refused at once and leaves no file and no row behind. The upload
    is read in chunks (Django has streamed it to a temporary file already).
    Identical content with the same options, uploaded again by the same owner,
    returns the existing data set (created is False) and stores nothing. A new
    upload under a name the owner already used becomes that name's next version.
    `content_sha256` is the digest the upload handler computed as the bytes
    streamed in; without it the file is hashed here.
    """
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A data set needs a name.", fields={"name": ["This field is required."]})
    if len(name) > 200:
        raise ApplicationError("The name is longer than 200 characters.", fields={"name": ["Too long."]})
    options = dataset_options(val_ratio=val_ratio, split_seed=split_seed, task=task)
    if file.size > settings.DATASET_MAX_UPLOAD_BYTES:
        raise ApplicationError(
            f"The upload is {file.size} bytes; the limit is {settings.DATASET_MAX_UPLOAD_BYTES}.",
            code="too_large",
            fields={"file": ["File too large."]},
        )
    content_sha256 = content_sha256 or _sha256_of(file)
    fingerprint = upload_fingerprint(content_sha256, options)
    existing = (
        Dataset.objects.filter(
            owner=owner, upload_fingerprint=fingerprint, status__in=[DatasetStatus.VALIDATING, DatasetStatus.READY]
        )
        .order_by("-version")
        .first()
    )
    if existing is not None:
        return existing, False
    try:
        archive_members(file, archive_limits())
    except ArchiveRejected as exc:
        raise ApplicationError(
            f"The archive was refused: {exc}", code="archive_rejected", fields={"file": [str(exc)]}
        ) from exc
    file.seek(0)
    dataset = Dataset(
        owner=owner,
        name=name,
        upload_uuid=uuid.uuid4(),
        archive_size=file.size,
        content_sha256=content_sha256,
        upload_fingerprint=fingerprint,
        options=options,
        auto_train=settings.DATASET_AUTO_TRAIN if auto_train is None else bool(auto_train),
    )
    dataset.archive.save("archive.zip", file, save=False)
    try:
        _save_next_version(dataset)
    except Exception:
        dataset.archive.storage.delete(dataset.archive.name)
        raise
    return dataset, True


def _save_next_version(dataset):
    """Insert the row as the next version of its name; a concurrent upload of the same name retries."""
    for attempt in range(VERSION_RETRIES):
        try:
            with transaction.atomic():
                latest = Dataset.objects.filter(owner=dataset.owner, name=dataset.name).aggregate(v=Max("version"))["v"]
                dataset.version = (latest or 0) + 1
                dataset.save()
                transaction.on_commit(lambda pk=dataset.pk: _enqueue_ingest(pk))
            return
        except IntegrityError:
            dataset.pk = None
            if attempt == VERSION_RETRIES - 1:
                raise


def _enqueue_ingest(dataset_id):
    from datasets.tasks import dataset_ingest_task

    dataset_ingest_task.delay(dataset_id)


def _usage(protected):
    counts = Counter()
    for obj in protected:
        label = str(obj._meta.verbose_name)
        kind = getattr(obj, "get_kind_display", None)
        if callable(kind):
            label = f"{kind().lower()} {label}"
        counts[label] += 1
    return ", ".join(f"{count} {label}{'s' if count > 1 else ''}" for label, count in sorted(counts.items()))


def dataset_stored_names(dataset):
    """Every file stored for a data set: archive, layout manifest, thumbnails."""
    names = [dataset.archive.name, dataset.manifest]
    names += list(dataset.files.exclude(preview="").values_list("preview", flat=True))
    return [n for n in names if n]


def dataset_storage_sweep(storage, prefix):
    """Delete whatever is left under a data set's prefix (an ingest attempt that died may have stored previews)."""
    try:
        folders, files = storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in files:
        storage.delete(f"{prefix}{name}")
    for folder in folders:
        dataset_storage_sweep(storage, f"{prefix}{folder}/")


def dataset_delete(*, dataset):
    """Delete a data set, its stored files and this node's cached copy; refused while a job or model uses it."""
    storage = dataset.archive.storage
    names = dataset_stored_names(dataset)
    prefix = dataset_storage_prefix(dataset)
    layout_hash = dataset.layout_sha256
    try:
        with transaction.atomic():
            dataset.delete()
            shared = bool(layout_hash) and Dataset.objects.filter(layout_sha256=layout_hash).exists()
            transaction.on_commit(lambda: _remove_files(storage, names, prefix, None if shared else layout_hash))
    except ProtectedError as exc:
        raise ConflictError(
            f"Data set {dataset.pk} is used by {_usage(exc.protected_objects)} and cannot be deleted."
        ) from exc


def _remove_files(storage, names, prefix, layout_hash):
    for name in names:
        storage.delete(name)
    dataset_storage_sweep(storage, prefix)
    dataset_cache_remove(layout_hash)
