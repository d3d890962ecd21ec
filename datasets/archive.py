"""Safe extraction of uploaded zip archives.

Every member is checked before a byte is written (names, types, sizes, ratio),
and the bytes actually written are counted again, because a zip's declared
sizes are attacker-controlled.
"""

import os
import shutil
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
_CHUNK = 1024 * 1024


class ArchiveRejected(Exception):
    """The archive is unsafe or malformed; the message names the member and the reason."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_uncompressed_bytes: int
    max_compression_ratio: int


def _check_member_name(name):
    if not name:
        raise ArchiveRejected("archive member with an empty name")
    if "\\" in name:
        raise ArchiveRejected(f"{name!r}: backslashes are not allowed in member names")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ArchiveRejected(f"{name!r}: control characters are not allowed in member names")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ArchiveRejected(f"{name!r}: absolute paths are not allowed")
    if ".." in path.parts:
        raise ArchiveRejected(f"{name!r}: '..' path components are not allowed")


def archive_members(archive_path, limits):
    """Check every member of a zip and return the regular files to extract.

    Raises:
        ArchiveRejected: with a message naming the first problem found.
    """
    try:
        archive = zipfile.ZipFile(archive_path)
    except zipfile.BadZipFile as exc:
        raise ArchiveRejected(f"not a valid zip archive ({exc})") from exc
    with archive:
        infos = archive.infolist()
    if not infos:
        raise ArchiveRejected("the archive is empty")
    if len(infos) > limits.max_members:
        raise ArchiveRejected(f"the archive has {len(infos)} members; the limit is {limits.max_members}")
    total = 0
    seen = {}
    files = []
    for info in infos:
        _check_member_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveRejected(f"{info.filename!r}: symbolic links are not allowed")
        if info.flag_bits & 0x1:
            raise ArchiveRejected(f"{info.filename!r}: encrypted members are not allowed")
        if info.is_dir():
            continue
        if info.filename.lower().endswith(NESTED_ARCHIVE_SUFFIXES):
            raise ArchiveRejected(f"{info.filename!r}: nested archives are not allowed")
        folded = unicodedata.normalize("NFC", info.filename).casefold()
        if folded in seen:
            raise ArchiveRejected(f"{info.filename!r} collides with {seen[folded]!r} after case/Unicode normalisation")
        seen[folded] = info.filename
        total += info.file_size
        if total > limits.max_uncompressed_bytes:
            raise ArchiveRejected(f"the archive expands to more than {limits.max_uncompressed_bytes} bytes")
        if info.compress_size and info.file_size / info.compress_size > limits.max_compression_ratio:
            raise ArchiveRejected(
                f"{info.filename!r}: compression ratio {info.file_size // info.compress_size}:1 is above "
                f"the limit of {limits.max_compression_ratio}:1"
            )
        files.append(info)
    return files


def _strip_common_root(names):
    """Archives made by zipping a folder hold one top folder; drop it."""
    parts = {PurePosixPath(n).parts[0] for n in names}
    if len(parts) == 1 and all(len(PurePosixPath(n).parts) > 1 for n in names):
        return len(next(iter(parts))) + 1
    return 0


def archive_extract(archive_path, destination, limits):
    """Extract a checked archive into `destination` (which must not exist yet).

    The bytes written are counted against the declared sizes and the total limit;
    on any error the partly written folder is removed.
    """
    destination = Path(destination)
    files = archive_members(archive_path, limits)
    cut = _strip_common_root([info.filename for info in files])
    destination.mkdir(parents=True)
    written_total = 0
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for info in files:
                relative = info.filename[cut:]
                target = destination.joinpath(*PurePosixPath(relative).parts)
                if not target.resolve().is_relative_to(destination.resolve()):
                    raise ArchiveRejected(f"{info.filename!r}: resolves outside the data set folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with archive.open(info) as source, open(target, "xb") as sink:
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        written_total += len(chunk)
                        if written > info.file_size:
                            raise ArchiveRejected(f"{info.filename!r}: holds more bytes than it declares")
                        if written_total > limits.max_uncompressed_bytes:
                            raise ArchiveRejected(
                                f"the archive expands to more than {limits.max_uncompressed_bytes} bytes"
                            )
                        sink.write(chunk)
                os.chmod(target, 0o644)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, OSError, zlib.error, NotImplementedError) as exc:
        shutil.rmtree(destination, ignore_errors=True)
        raise ArchiveRejected(f"the archive is damaged or truncated ({exc})") from exc
    except ArchiveRejected:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return destination
