"""The node-local data set cache: one extracted copy per archive content hash.

A second job on the same data copies nothing. Extraction goes to a temporary
folder that is renamed into place, so a crashed extraction never leaves a
half-written entry that a later job would trust.
"""

import shutil
import tempfile
from pathlib import Path

from django.conf import settings

from datasets.archive import ArchiveLimits, archive_extract


def archive_limits():
    return ArchiveLimits(
        max_members=settings.DATASET_MAX_MEMBERS,
        max_uncompressed_bytes=settings.DATASET_MAX_UNCOMPRESSED_BYTES,
        max_compression_ratio=settings.DATASET_MAX_COMPRESSION_RATIO,
    )


def dataset_cache_dir(content_sha256):
    return Path(settings.CACHE_DIR) / "datasets" / content_sha256


def dataset_local_copy(dataset):
    """Return the extracted data set on this node, fetching it from storage if needed."""
    target = dataset_cache_dir(dataset.content_sha256)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".incoming-") as tmp:
        local_zip = Path(tmp) / "archive.zip"
        with dataset.archive.open("rb") as source, open(local_zip, "wb") as sink:
            shutil.copyfileobj(source, sink, 1024 * 1024)
        extracted = archive_extract(local_zip, Path(tmp) / "data", archive_limits())
        try:
            extracted.rename(target)
        except OSError:
            if not target.is_dir():  # lost a race with another job: theirs is as good
                raise
    return target
