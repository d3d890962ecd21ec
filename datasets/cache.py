"""The node-local data set cache: one Ultralytics-ready copy per layout hash.

A data set's layout (which files of the archive, where, with which converted
labels) is decided once, at ingest, and stored as a manifest next to the
archive. The node that trains builds the folder from the archive and the
manifest when a job first needs it, so every node trains on exactly what was
validated, and excluded files never reach it. (Ingest itself writes no image
to disk: it validates them from memory.) A second job on the same data copies nothing.
Building happens in a temporary folder that is renamed into place, so a
crashed build never leaves a half-written entry that a later job would trust.
"""

import gzip
import hashlib
import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import yaml
from django.conf import settings
from django.core.files.base import ContentFile

from datasets.archive import ArchiveLimits, ArchiveRejected, archive_extract
from datasets.choices import DatasetTask

MANIFEST_VERSION = 1
_CHUNK = 1024 * 1024


def archive_limits():
    return ArchiveLimits(
        max_members=settings.DATASET_MAX_MEMBERS,
        max_uncompressed_bytes=settings.DATASET_MAX_UNCOMPRESSED_BYTES,
        max_compression_ratio=settings.DATASET_MAX_COMPRESSION_RATIO,
    )


def cache_root():
    return Path(settings.CACHE_DIR) / "datasets"


def dataset_cache_dir(layout_sha256):
    return cache_root() / layout_sha256


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def stored_archive(dataset, folder):
    """A local path to the data set's archive, its sha256 checked against the row.

    Any storage but a local one is copied into `folder` while hashing. A local
    file is hashed on a thread while the caller works with it (hashing releases
    the GIL): the check happens when the block ends, so what the block produced
    must not be used if it raises.
    """
    storage, name = dataset.archive.storage, dataset.archive.name
    try:
        local = Path(storage.path(name))
    except NotImplementedError:
        local = None
    if local is None:
        local = Path(folder) / "archive.zip"
        digest = hashlib.sha256()
        with storage.open(name, "rb") as source, open(local, "wb") as sink:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                sink.write(chunk)
        actual = digest.hexdigest
        yield local
    else:
        with ThreadPoolExecutor(max_workers=1) as hasher:
            future = hasher.submit(_file_sha256, local)
            actual = future.result
            yield local
    if dataset.content_sha256 and actual() != dataset.content_sha256:
        raise ArchiveRejected(f"the stored archive of data set {dataset.pk} does not match its sha256")


def manifest_bytes(manifest):
    """The canonical bytes of a manifest; their sha256 is the layout hash."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def layout_sha256(manifest):
    return hashlib.sha256(manifest_bytes(manifest)).hexdigest()


def manifest_store(storage, name, manifest):
    return storage.save(name, ContentFile(gzip.compress(manifest_bytes(manifest), mtime=0)))


def manifest_load(dataset):
    with dataset.archive.storage.open(dataset.manifest, "rb") as handle:
        return json.loads(gzip.decompress(handle.read()))


def write_data_yaml(folder, manifest, final_path):
    """The server's own data.yaml (detection and segmentation): paths are ours, names the user's."""
    if manifest["task"] == DatasetTask.CLASSIFY:
        return
    document = {
        "path": str(final_path),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(manifest["classes"])),
    }
    (folder / "data.yaml").write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def write_generated_labels(folder, manifest):
    for relative, text in manifest["labels"].items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


def _install(built, target):
    """Rename a finished build into place; a build that lost a race to another is as good."""
    try:
        built.rename(target)
    except OSError:
        if not target.is_dir():
            raise
    return target


def dataset_local_copy(dataset):
    """Return the Ultralytics-ready folder of a data set on this node, building it if needed.

    Detection and segmentation: images/{train,val}/... and labels/{train,val}/*.txt
    (plus the server's data.yaml). Classification: {train,val}/<class>/...
    """
    if not dataset.manifest:
        return _legacy_local_copy(dataset)
    target = dataset_cache_dir(dataset.layout_sha256)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    manifest = manifest_load(dataset)
    if layout_sha256(manifest) != dataset.layout_sha256:
        raise ArchiveRejected(f"the stored layout of data set {dataset.pk} does not match its sha256")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".incoming-") as tmp:
        with stored_archive(dataset, tmp) as archive:
            root = manifest["root"]
            select = {f"{root}{relative}": destination for relative, destination in manifest["files"]}
            built = archive_extract(archive, Path(tmp) / "layout", archive_limits(), select=select)
        write_generated_labels(built, manifest)
        write_data_yaml(built, manifest, target)
        _install(built, target)
    return target


def _legacy_local_copy(dataset):
    """Rows ingested before layouts were stored: the whole archive, keyed by its own hash."""
    target = dataset_cache_dir(dataset.content_sha256)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".incoming-") as tmp:
        with stored_archive(dataset, tmp) as archive:
            extracted = archive_extract(archive, Path(tmp) / "data", archive_limits())
        _install(extracted, target)
    return target


def dataset_cache_remove(layout_hash):
    if layout_hash:
        shutil.rmtree(dataset_cache_dir(layout_hash), ignore_errors=True)
