"""Property: whatever the member list (names, sizes, lies in the headers), extraction writes only inside
the target folder and never more bytes than the limit; a refused archive leaves no folder."""

import io
import struct
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from datasets.archive import ArchiveLimits, ArchiveRejected, archive_extract

PLAIN = st.text("abcXYZé_-. ", min_size=1, max_size=8)
HOSTILE = st.sampled_from(["..", ".", "", "~", "\\", "..\\..", "C:", "x" * 300, "\x1b", "\x7f"])
PLAIN_NAME = st.lists(PLAIN, min_size=1, max_size=4).map("/".join)
HOSTILE_NAME = st.builds(
    lambda absolute, parts: ("/" if absolute else "") + "/".join(parts),
    st.booleans(),
    st.lists(st.one_of(PLAIN, HOSTILE), min_size=1, max_size=5),
)
# Mostly plain names, so that many archives do extract and the property is tested on real writes.
NAMES = st.one_of(*[PLAIN_NAME] * 9, HOSTILE_NAME)
PAYLOADS = st.one_of(
    st.binary(max_size=2000), st.binary(max_size=2000), st.integers(0, 60_000).map(bytes)
)  # random, or zeros that compress
MEMBERS = st.lists(
    st.tuples(
        NAMES,
        PAYLOADS,
        st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
        st.sampled_from([0, 0, 0, 0, 0, 1, 3]),
    ),
    min_size=1,
    max_size=8,
)
LIMITS = st.builds(
    ArchiveLimits,
    max_members=st.sampled_from([2, 5, 1000, 1000, 1000, 1000]),
    max_uncompressed_bytes=st.one_of(st.integers(100, 20_000), st.just(10**6), st.just(10**6)),
    max_compression_ratio=st.integers(2, 300),
)


def build(members):
    """A zip of the members; a non-zero `lie` shrinks the size both headers declare for that member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, payload, method, _ in members:
            archive.writestr(zipfile.ZipInfo(name or "x"), payload, compress_type=method)
    data = buffer.getvalue()
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    central = zipfile._EndRecData(io.BytesIO(data))[zipfile._ECD_OFFSET]
    for info, (_, payload, _, lie) in zip(infos, members, strict=True):
        if lie and len(payload) > lie:
            declared = len(payload) // (lie + 1)
            data = data[: info.header_offset + 22] + struct.pack("<L", declared) + data[info.header_offset + 26 :]
            data = data[: central + 24] + struct.pack("<L", declared) + data[central + 28 :]
        name_length, extra_length, comment_length = struct.unpack("<3H", data[central + 28 : central + 34])
        central += 46 + name_length + extra_length + comment_length
    return data


def check(members, limits, select_targets):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        archive = root / "upload.zip"
        archive.write_bytes(build(members))
        destination = root / "out" / "data"
        select = None
        if select_targets is not None:
            names = [info.filename for info in zipfile.ZipFile(archive).infolist() if not info.is_dir()]
            select = dict(zip(names, select_targets, strict=False))
        try:
            archive_extract(archive, destination, limits, select=select)
            refused = False
        except ArchiveRejected:
            refused = True
        event("refused" if refused else "extracted")
        written = [p for p in root.rglob("*") if p != archive and not p.is_dir()]
        for path in written:
            assert not path.is_symlink()
            assert path.resolve().is_relative_to(destination.resolve()), path
        assert sum(p.stat().st_size for p in written) <= limits.max_uncompressed_bytes
        if refused:
            assert not destination.exists()
            assert written == []


pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")


@settings(max_examples=250, deadline=None)
@given(members=MEMBERS, limits=LIMITS)
def test_extraction_stays_inside_and_within_the_limit(members, limits):
    check(members, limits, None)


@settings(max_examples=150, deadline=None)
@given(members=MEMBERS, limits=LIMITS, targets=st.lists(NAMES, min_size=1, max_size=8))
def test_extraction_to_chosen_paths_stays_inside_and_within_the_limit(members, limits, targets):
    check(members, limits, targets)
