"""Safe extraction of uploaded zip archives.

Every member is checked before a byte is written: names, types, declared sizes,
compression ratio, and the archive's own structure (the end record, each local
header against the central directory, members that overlap or hide data before
the first member). The bytes actually written are counted again, because a
zip's declared sizes are attacker-controlled.
"""

import os
import shutil
import stat
import struct
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

NESTED_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst", ".lz4")
# stored, deflate, bzip2, lzma: what the standard library decodes.
SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# Files that archivers add on their own; never part of a data set.
JUNK_FOLDERS = {"__MACOSX"}
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
# Only members at least this large are held to the per-member ratio; the
# whole archive is always held to it (small files cannot expand much).
RATIO_CHECK_MIN_BYTES = 1024 * 1024
MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255
MAX_DEPTH = 32
_CHUNK = 1024 * 1024
KEEP_BYTES = 64 * 1024 * 1024  # on_file gets the bytes of files up to this size
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    EOFError,
    zipfile.LargeZipFile,
    OSError,
    zlib.error,
    NotImplementedError,
    ValueError,
    struct.error,
    OverflowError,
    RuntimeError,
)


class ArchiveRejected(Exception):
    """The archive is unsafe or malformed; the message names the member and the reason."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int
    max_uncompressed_bytes: int
    max_compression_ratio: int


def is_junk(name):
    """macOS resource forks, Finder and Explorer metadata: skipped, never extracted."""
    parts = PurePosixPath(name).parts
    if not parts:
        return False
    return parts[0] in JUNK_FOLDERS or parts[-1].lower() in JUNK_NAMES or parts[-1].startswith("._")


def _check_member_name(name):
    if not name:
        raise ArchiveRejected("archive member with an empty name")
    if "\\" in name:
        raise ArchiveRejected(f"{name!r}: backslashes are not allowed in member names")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ArchiveRejected(f"{name!r}: control characters are not allowed in member names")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveRejected(f"{name!r}: absolute paths are not allowed")
    raw_parts = name.rstrip("/").split("/")
    if ".." in raw_parts:
        raise ArchiveRejected(f"{name!r}: '..' path components are not allowed")
    if "." in raw_parts or "" in raw_parts:
        raise ArchiveRejected(f"{name!r}: empty or '.' path components are not allowed")
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_NAME_BYTES or len(raw_parts) > MAX_DEPTH:
        raise ArchiveRejected(f"{name[:80]!r}...: the path is too long or too deep")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES for part in raw_parts):
        raise ArchiveRejected(f"{name[:80]!r}: a path component is longer than {MAX_COMPONENT_BYTES} bytes")


def _check_member_type(info):
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        raise ArchiveRejected(f"{info.filename!r}: symbolic links are not allowed")
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveRejected(f"{info.filename!r}: special files (devices, pipes, sockets) are not allowed")
    if info.flag_bits & 0x41:  # traditional or strong encryption
        raise ArchiveRejected(f"{info.filename!r}: encrypted members are not allowed")


def _open(source):
    """Open a zip from a path or a seekable file object, translating every parser error."""
    handle = open(source, "rb") if isinstance(source, str | os.PathLike) else source  # noqa: SIM115
    handle.seek(0)
    head = handle.read(4)
    handle.seek(0)
    try:
        archive = zipfile.ZipFile(handle)
    except UnicodeDecodeError as exc:
        raise ArchiveRejected("a member name is flagged UTF-8 but is not valid UTF-8") from exc
    except NotImplementedError as exc:
        raise ArchiveRejected(f"the archive uses an unsupported zip feature ({exc})") from exc
    except _ZIP_ERRORS as exc:
        if head == _LOCAL_SIGNATURE:
            raise ArchiveRejected(
                "the archive is truncated: it starts like a zip but its central directory is missing or damaged"
            ) from exc
        raise ArchiveRejected(f"not a valid zip archive ({exc})") from exc
    return archive, handle


def _check_structure(archive, handle, infos):
    """The end record, local headers and member extents must agree with the central directory."""
    try:
        handle.seek(0)
        endrec = zipfile._EndRecData(handle)
    except _ZIP_ERRORS:
        endrec = None
    if endrec and endrec[zipfile._ECD_ENTRIES_TOTAL] != len(infos):
        raise ArchiveRejected(
            f"the archive's end record declares {endrec[zipfile._ECD_ENTRIES_TOTAL]} members but its "
            f"central directory holds {len(infos)}"
        )
    extents = []
    for info in infos:
        handle.seek(info.header_offset)
        header = handle.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            raise ArchiveRejected(f"{info.filename!r}: its local header lies beyond the end of the archive")
        fields = _LOCAL_HEADER.unpack(header)
        signature, flags, method = fields[0], fields[3], fields[4]
        local_csize, local_usize, name_length, extra_length = fields[8], fields[9], fields[10], fields[11]
        if signature != _LOCAL_SIGNATURE:
            raise ArchiveRejected(f"{info.filename!r}: the central directory points at something that is not a member")
        local_name = handle.read(name_length)
        if local_name != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace"):
            raise ArchiveRejected(f"{info.filename!r}: the local header names a different file")
        if method != info.compress_type:
            raise ArchiveRejected(f"{info.filename!r}: local header and central directory disagree on compression")
        sizes_declared = not flags & 0x8 and 0xFFFFFFFF not in (local_csize, local_usize)
        if sizes_declared and (local_csize, local_usize) != (info.compress_size, info.file_size):
            raise ArchiveRejected(
                f"{info.filename!r}: declared sizes disagree (local header {local_usize} bytes, "
                f"central directory {info.file_size} bytes)"
            )
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        extents.append((info.header_offset, start + info.compress_size, info.filename))
    extents.sort()
    if extents and extents[0][0] != 0:
        raise ArchiveRejected(
            f"the archive has {extents[0][0]} bytes of other data before its first member "
            "(a self-extracting or disguised file)"
        )
    for (_, end, name), (next_start, _, next_name) in zip(extents, extents[1:], strict=False):
        if end > next_start:
            raise ArchiveRejected(f"{name!r} overlaps {next_name!r}: overlapping members are a zip bomb technique")
    if extents and extents[-1][1] > archive.start_dir:
        raise ArchiveRejected(f"{extents[-1][2]!r}: its data runs into the central directory")


def archive_members(source, limits):
    """Check every member of a zip and return the regular files to extract.

    `source` is a path or a seekable binary file object. Directory entries and
    archiver metadata (__MACOSX/, .DS_Store, ._*) are skipped.

    Raises:
        ArchiveRejected: with a message naming the first problem found.
    """
    archive, handle = _open(source)
    try:
        with archive:
            infos = archive.infolist()
            if not infos:
                raise ArchiveRejected("the archive is empty")
            if len(infos) > limits.max_members:
                raise ArchiveRejected(f"the archive has {len(infos)} members; the limit is {limits.max_members}")
            files = _check_members(infos, limits)
            _check_structure(archive, handle, infos)
    finally:
        if handle is not source:
            handle.close()
    if not files:
        raise ArchiveRejected("the archive holds no files, only folders or archiver metadata")
    return files


def _check_members(infos, limits):
    total = compressed = 0
    seen = {}
    folders = {}
    files = []
    for info in infos:
        # orig_filename: zipfile cuts a name at its first NUL byte; the cut name must not hide it.
        _check_member_name(info.orig_filename)
        _check_member_type(info)
        if info.is_dir():
            continue
        if info.compress_type not in SUPPORTED_METHODS:
            raise ArchiveRejected(
                f"{info.filename!r}: compression method {info.compress_type} is not supported (use deflate or store)"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise ArchiveRejected(
                f"{info.filename!r}: declares {info.file_size} bytes but stores {info.compress_size} uncompressed"
            )
        if info.filename.lower().endswith(NESTED_ARCHIVE_SUFFIXES):
            raise ArchiveRejected(f"{info.filename!r}: nested archives are not allowed")
        folded = unicodedata.normalize("NFC", info.filename).casefold()
        if folded in seen:
            raise ArchiveRejected(f"{info.filename!r} collides with {seen[folded]!r} after case/Unicode normalisation")
        seen[folded] = info.filename
        parts = folded.split("/")
        for depth in range(1, len(parts)):
            folders.setdefault("/".join(parts[:depth]), info.filename)
        total += info.file_size
        compressed += info.compress_size
        if total > limits.max_uncompressed_bytes:
            raise ArchiveRejected(f"the archive expands to more than {limits.max_uncompressed_bytes} bytes")
        if info.file_size >= RATIO_CHECK_MIN_BYTES and info.file_size > limits.max_compression_ratio * max(
            info.compress_size, 1
        ):
            raise ArchiveRejected(
                f"{info.filename!r}: compression ratio {info.file_size // max(info.compress_size, 1)}:1 is above "
                f"the limit of {limits.max_compression_ratio}:1"
            )
        if is_junk(info.filename):
            continue
        files.append(info)
    for folded, name in seen.items():
        if folded in folders:
            raise ArchiveRejected(f"{name!r} is a file, but {folders[folded]!r} needs it to be a folder")
    if total > RATIO_CHECK_MIN_BYTES and total > limits.max_compression_ratio * max(compressed, 1):
        raise ArchiveRejected(
            f"the archive expands {total // max(compressed, 1)}:1 overall; the limit is "
            f"{limits.max_compression_ratio}:1"
        )
    return files


def common_root(names):
    """Archives made by zipping a folder hold one top folder; return it with its slash, or ''."""
    tops = set()
    for name in names:
        head, slash, _ = name.partition("/")
        if not slash:
            return ""
        tops.add(head)
        if len(tops) > 1:
            return ""
    return f"{tops.pop()}/" if tops else ""


def _copy_member(archive, info, sink, limits, counter, progress, keep):
    """Copy one member into `sink` (a binary file, or None); returns its bytes when `keep`."""
    written = 0
    kept = [] if keep else None
    with archive.open(info) as source:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            counter[0] += len(chunk)
            if written > info.file_size:
                raise ArchiveRejected(f"{info.filename!r}: holds more bytes than it declares")
            if counter[0] > limits.max_uncompressed_bytes:
                raise ArchiveRejected(f"the archive expands to more than {limits.max_uncompressed_bytes} bytes")
            if sink is not None:
                sink.write(chunk)
            if kept is not None:
                kept.append(chunk)
            if progress is not None:
                progress(counter[0])
    if written != info.file_size:
        raise ArchiveRejected(f"{info.filename!r}: holds {written} bytes but declares {info.file_size}")
    return b"".join(kept) if kept is not None else None


def _plan(files, select):
    if select is None:
        cut = len(common_root(info.filename for info in files))
        return [(info, info.filename[cut:]) for info in files]
    by_name = {info.filename: info for info in files}
    missing = sorted(set(select) - set(by_name))
    if missing:
        raise ArchiveRejected(f"{missing[0]!r}: not in the archive")
    return [(by_name[name], relative) for name, relative in select.items()]


def archive_extract(
    archive_path, destination, limits, *, select=None, progress=None, members=None, on_file=None, in_memory=None
):
    """Extract a checked archive into `destination` (which must not exist yet).

    Without `select`, every file is extracted with the archive's single top
    folder (if any) removed. With `select` (a mapping of member name to a
    relative target path) only those members are extracted, to those paths.
    `members` is archive_members' answer for this archive and these limits,
    when the caller has it already. `progress(bytes_done, bytes_total)` is
    called as data is read; `on_file(relative_path, data)` after each file
    (data is the file's bytes, or None above KEEP_BYTES). A file for which
    `in_memory(relative_path)` is true (and that is not above KEEP_BYTES) is
    only handed to on_file, not written. Every byte is counted against the
    declared sizes and the total limit, and checked against its CRC; on any
    error the partly written folder is removed.
    """
    destination = Path(destination)
    files = archive_members(archive_path, limits) if members is None else members
    plan = _plan(files, select)
    destination.mkdir(parents=True)
    root = os.path.realpath(destination)
    counter = [0]
    total = sum(info.file_size for info, _ in plan)
    report = None if progress is None else (lambda done: progress(done, total))
    folders = {root}
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for info, relative in plan:
                _check_member_name(relative)
                keep = on_file is not None and info.file_size <= KEEP_BYTES
                if keep and in_memory is not None and in_memory(relative):
                    data = _copy_member(archive, info, None, limits, counter, report, keep)
                    on_file(relative, data)
                    continue
                # Extraction creates every folder and file itself and never a link, so a normalised
                # path that stays below the root is the real one.
                target = os.path.normpath(os.path.join(root, relative))
                if not target.startswith(root + os.sep):
                    raise ArchiveRejected(f"{info.filename!r}: resolves outside the data set folder")
                parent = os.path.dirname(target)
                if parent not in folders:
                    os.makedirs(parent, exist_ok=True)
                    folders.add(parent)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                os.fchmod(fd, 0o644)  # whatever the umask: the cache is read by other processes
                with os.fdopen(fd, "wb") as sink:
                    data = _copy_member(archive, info, sink, limits, counter, report, keep)
                if on_file is not None:
                    on_file(relative, data)
    except ArchiveRejected:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    except _ZIP_ERRORS as exc:
        shutil.rmtree(destination, ignore_errors=True)
        raise ArchiveRejected(f"the archive is damaged or truncated ({exc})") from exc
    return destination
