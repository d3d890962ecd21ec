"""Safe extraction of uploaded zips: hostile archives are refused before a byte is written."""

import io
import stat
import struct
import zipfile

import pytest

from datasets.archive import ArchiveLimits, ArchiveRejected, archive_extract, archive_members
from tests import datagen

LIMITS = ArchiveLimits(max_members=1000, max_uncompressed_bytes=64 * 1024**2, max_compression_ratio=200)


def make_zip(members, *, compression=zipfile.ZIP_DEFLATED):
    """A zip of (name or ZipInfo, bytes) members, built in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink_zip():
    info = zipfile.ZipInfo("images/train/link.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return make_zip([("data.yaml", "names: [a]\n"), (info, "/etc/passwd")])


def encrypted_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.yaml", "names: [a]\n")
        archive.writestr("secret.txt", "ciphertext")
        # zipfile resets flag_bits while writing; the central directory is written on close.
        archive.getinfo("secret.txt").flag_bits |= 0x1
    return buffer.getvalue()


HOSTILE = [
    pytest.param(lambda: make_zip([("../x", b"x")]), LIMITS, ["'../x'", "'..' path components"], id="zip-slip-parent"),
    pytest.param(
        lambda: make_zip([("images/../../x.jpg", b"x")]), LIMITS, ["'..' path components"], id="zip-slip-nested"
    ),
    pytest.param(lambda: make_zip([("/etc/x", b"x")]), LIMITS, ["'/etc/x'", "absolute paths"], id="absolute"),
    pytest.param(lambda: make_zip([("C:/x", b"x")]), LIMITS, ["absolute paths"], id="drive-letter"),
    pytest.param(lambda: make_zip([("a\\b", b"x")]), LIMITS, ["backslashes"], id="backslash"),
    pytest.param(symlink_zip, LIMITS, ["link.jpg", "symbolic links"], id="symlink"),
    pytest.param(encrypted_zip, LIMITS, ["secret.txt", "encrypted members"], id="encrypted"),
    pytest.param(
        lambda: make_zip([("data.yaml", b"names: [a]\n"), ("more/inner.zip", make_zip([("a", b"a")]))]),
        LIMITS,
        ["more/inner.zip", "nested archives"],
        id="nested-zip",
    ),
    pytest.param(lambda: make_zip([("x.tar.gz", b"x")]), LIMITS, ["nested archives"], id="nested-tar-gz"),
    pytest.param(lambda: make_zip([]), LIMITS, ["the archive is empty"], id="empty"),
    pytest.param(lambda: b"<html>not a zip</html>", LIMITS, ["not a valid zip archive"], id="not-a-zip"),
    pytest.param(
        lambda: make_zip([(f"f{i}.txt", b"x") for i in range(3)]),
        ArchiveLimits(max_members=2, max_uncompressed_bytes=10**6, max_compression_ratio=200),
        ["3 members", "the limit is 2"],
        id="too-many-members",
    ),
    pytest.param(
        lambda: make_zip([("a.bin", bytes(range(256)) * 3), ("b.bin", bytes(range(256)) * 3)], compression=0),
        ArchiveLimits(max_members=10, max_uncompressed_bytes=1000, max_compression_ratio=200),
        ["expands to more than 1000 bytes"],
        id="total-size",
    ),
    pytest.param(
        lambda: make_zip([("zeros.bin", bytes(5 * 1024**2))]),
        ArchiveLimits(max_members=10, max_uncompressed_bytes=10**9, max_compression_ratio=100),
        ["zeros.bin", "compression ratio", "limit of 100:1"],
        id="ratio-bomb",
    ),
    pytest.param(
        lambda: make_zip([("images/A.jpg", b"1"), ("images/a.jpg", b"2")]),
        LIMITS,
        ["'images/a.jpg' collides with 'images/A.jpg'"],
        id="case-collision",
    ),
    pytest.param(
        lambda: make_zip([("caf\u00e9.jpg", b"1"), ("cafe\u0301.jpg", b"2")]),
        LIMITS,
        ["collides with"],
        id="unicode-normalisation-collision",
    ),
    pytest.param(lambda: make_zip([("a\x07b.jpg", b"x")]), LIMITS, ["control characters"], id="control-char"),
    pytest.param(lambda: make_zip([("a\x7fb.jpg", b"x")]), LIMITS, ["control characters"], id="delete-char"),
]


@pytest.mark.parametrize(("build", "limits", "expected"), HOSTILE)
def test_archive_members_rejects_hostile_archive(tmp_path, build, limits, expected):
    path = tmp_path / "upload.zip"
    path.write_bytes(build())

    with pytest.raises(ArchiveRejected) as excinfo:
        archive_members(path, limits)

    for fragment in expected:
        assert fragment in str(excinfo.value)


@pytest.mark.parametrize(("build", "limits", "expected"), HOSTILE)
def test_archive_extract_rejects_hostile_archive_and_leaves_no_folder(tmp_path, build, limits, expected):
    path = tmp_path / "upload.zip"
    path.write_bytes(build())
    destination = tmp_path / "out" / "data"

    with pytest.raises(ArchiveRejected) as excinfo:
        archive_extract(path, destination, limits)

    assert expected[-1] in str(excinfo.value)
    assert not destination.exists()
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload.zip"]


def test_archive_members_accepts_an_open_file_object():
    files = archive_members(io.BytesIO(datagen.detection_zip(train=2, val=1)), LIMITS)

    assert sorted(info.filename for info in files)[:2] == ["data.yaml", "images/train/img000.jpg"]
    assert len(files) == 1 + 2 * (2 + 1)


def test_archive_members_skips_directory_entries():
    data = make_zip([("shapes/", b""), ("shapes/data.yaml", b"names: [a]\n")])

    files = archive_members(io.BytesIO(data), LIMITS)

    assert [info.filename for info in files] == ["shapes/data.yaml"]


def test_archive_extract_strips_the_single_top_folder(tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(datagen.detection_zip(train=3, val=2, top_folder="shapes"))
    destination = tmp_path / "data"

    result = archive_extract(path, destination, LIMITS)

    assert result == destination
    assert not (destination / "shapes").exists()
    assert (destination / "data.yaml").read_text().startswith("names:")
    assert sorted(p.name for p in (destination / "images" / "train").iterdir()) == [
        "img000.jpg",
        "img001.jpg",
        "img002.jpg",
    ]
    assert sorted(p.name for p in (destination / "labels" / "val").iterdir()) == ["img000.txt", "img001.txt"]
    assert stat.S_IMODE((destination / "data.yaml").stat().st_mode) == 0o644


def test_archive_extract_keeps_layout_without_a_top_folder(tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(datagen.detection_zip(train=1, val=1))

    destination = archive_extract(path, tmp_path / "data", LIMITS)

    assert sorted(p.name for p in destination.iterdir()) == ["data.yaml", "images", "labels"]


def _damage_member_data(data, name, replacement):
    """Overwrite the start of a member's stored bytes; the central directory stays intact."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return data[:start] + replacement + data[start + len(replacement) :]


def test_archive_extract_rejects_a_crc_mismatch_and_removes_the_partial_folder(tmp_path):
    data = make_zip([("a.txt", b"a" * 100), ("b.txt", b"b" * 1000)], compression=zipfile.ZIP_STORED)
    path = tmp_path / "upload.zip"
    path.write_bytes(_damage_member_data(data, "b.txt", b"X" * 10))
    destination = tmp_path / "data"
    assert len(archive_members(path, LIMITS)) == 2  # the damage is only visible while extracting

    with pytest.raises(ArchiveRejected, match="damaged or truncated"):
        archive_extract(path, destination, LIMITS)

    assert not destination.exists()


def test_archive_extract_rejects_a_corrupt_deflate_stream_and_removes_the_partial_folder(tmp_path):
    data = make_zip([("a.txt", b"a" * 100), ("b.txt", b"b" * 1000)])
    path = tmp_path / "upload.zip"
    # 0x07: a final deflate block of the reserved type 3, which zlib refuses.
    path.write_bytes(_damage_member_data(data, "b.txt", b"\x07"))
    destination = tmp_path / "data"
    assert len(archive_members(path, LIMITS)) == 2

    with pytest.raises(ArchiveRejected, match="damaged or truncated"):
        archive_extract(path, destination, LIMITS)

    assert not destination.exists()


def zip64_archive():
    """A valid archive whose members carry zip64 extra fields (as tools write for large files)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (("data.yaml", b"names: [a]\n"), ("images/train/a.jpg", b"x" * 5000)):
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(data)
        archive.writestr("labels/train/a.txt", "0 0.5 0.5 0.1 0.1\n")
    return buffer.getvalue()


def test_a_zip64_archive_is_accepted_and_extracted(tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(zip64_archive())

    destination = archive_extract(path, tmp_path / "data", LIMITS)

    assert (destination / "images/train/a.jpg").read_bytes() == b"x" * 5000
    assert (destination / "labels/train/a.txt").read_text() == "0 0.5 0.5 0.1 0.1\n"


def test_a_zip64_end_record_that_disagrees_with_the_directory_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", allowZip64=True) as archive:
        archive.writestr("a.txt", b"a")
        archive.writestr("b.txt", b"b")
    data = buffer.getvalue()
    # Python writes a zip64 end record only when needed; build one the way large archives have it.
    end = data.rfind(b"PK\x05\x06")
    entries, size, offset = 2, *struct.unpack("<LL", data[end + 12 : end + 20])
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries + 5, entries + 5, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    path = tmp_path / "upload.zip"
    path.write_bytes(data[:end] + zip64_end + locator + data[end:])

    with pytest.raises(ArchiveRejected, match="end record declares 7 members but its central directory holds 2"):
        archive_members(path, LIMITS)
