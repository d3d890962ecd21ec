"""A generated corpus of hostile and malformed uploads, each with the message a person should get.

`stage` says where it must be caught: "upload" (refused synchronously: 400, no
file, no row), "ingest" (the data set becomes invalid with the report, its
archive dropped), or "warning" (a harmless data set with a dangerous key: it
is reported and ignored, never followed).
"""

import io
import json
import random
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field

from PIL import Image

from tests import datagen

EOCD = b"PK\x05\x06"
CENTRAL = b"PK\x01\x02"


@dataclass(frozen=True)
class Case:
    id: str
    build: object
    stage: str
    fragment: str
    settings: dict = field(default_factory=dict)
    code: str = "archive_rejected"


def make_zip(members, *, compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def good(**extra):
    """A small valid detection set, plus extra members."""
    return datagen.detection_zip(train=2, val=1, extra=extra)


def with_info(info, data=b"x"):
    buffer = io.BytesIO(good())
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(info, data)
    return buffer.getvalue()


def typed_member(kind):
    info = zipfile.ZipInfo("images/train/evil.jpg")
    info.external_attr = (kind | 0o644) << 16
    return with_info(info, b"/etc/passwd")


def encrypted():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.yaml", "names: [a]\n")
        archive.writestr("images/train/secret.jpg", "ciphertext")
        archive.getinfo("images/train/secret.jpg").flag_bits |= 0x1  # written into the central directory on close
    return buffer.getvalue()


def _central_entries(data):
    """Offsets of every central directory entry."""
    offsets, position = [], data.find(CENTRAL)
    while position != -1:
        offsets.append(position)
        position = data.find(CENTRAL, position + 4)
    return offsets


def _patch(data, offset, fmt, value):
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt) :]


def local_size_lies():
    """The local header declares another size than the central directory (a parser-differential trick)."""
    data = make_zip([("data.yaml", b"names: [a]\n"), ("images/train/a.jpg", b"x" * 100)], compression=0)
    offset = zipfile.ZipFile(io.BytesIO(data)).getinfo("images/train/a.jpg").header_offset
    return _patch(data, offset + 22, "<L", 5)  # uncompressed size in the local header


def stored_size_lies():
    """A stored member whose declared size is not what it stores (both headers agree on the lie)."""
    data = make_zip([("data.yaml", b"names: [a]\n"), ("images/train/a.jpg", b"x" * 100)], compression=0)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("images/train/a.jpg")
    data = _patch(data, info.header_offset + 22, "<L", 10_000)
    central = _central_entries(data)[1]
    return _patch(data, central + 24, "<L", 10_000)


def real_size_lies():
    """Deflated data longer than both headers declare: only extraction can tell (CRC)."""
    data = good()
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("labels/train/img000.txt")
    data = _patch(data, info.header_offset + 22, "<L", 4)
    index = [i.filename for i in zipfile.ZipFile(io.BytesIO(data)).infolist()].index("labels/train/img000.txt")
    return _patch(data, _central_entries(data)[index] + 24, "<L", 4)


def end_record_lies():
    data = good()
    position = data.rfind(EOCD)
    (entries,) = struct.unpack("<H", data[position + 10 : position + 12])
    return _patch(data, position + 10, "<H", entries + 3)


def local_name_lies():
    data = make_zip([("data.yaml", b"names: [a]\n"), ("images/train/a.jpg", b"x" * 10)], compression=0)
    offset = zipfile.ZipFile(io.BytesIO(data)).getinfo("images/train/a.jpg").header_offset
    name = b"images/train/a.jpg"
    return data[: offset + 30] + b"images/train/b.jpg" + data[offset + 30 + len(name) :]


def unsupported_method():
    data = make_zip([("data.yaml", b"names: [a]\n"), ("images/train/a.jpg", b"x" * 10)], compression=0)
    offset = zipfile.ZipFile(io.BytesIO(data)).getinfo("images/train/a.jpg").header_offset
    data = _patch(data, offset + 8, "<H", 99)
    return _patch(data, _central_entries(data)[1] + 10, "<H", 99)


def overlapping():
    """The first member's data is declared to run over the second member's header (Fifield's zip bomb)."""
    data = make_zip([("a.txt", b"a" * 50), ("b.txt", b"b" * 50)], compression=0)
    archive = zipfile.ZipFile(io.BytesIO(data))
    first, second = archive.getinfo("a.txt"), archive.getinfo("b.txt")
    grown = second.header_offset + 30 + len("b.txt") + 50 - (first.header_offset + 30 + len("a.txt"))
    for offset in (first.header_offset + 18, _central_entries(data)[0] + 20):
        data = _patch(data, offset, "<L", grown)
        data = _patch(data, offset + 4, "<L", grown)
    return data


def nul_in_name():
    """zipfile cuts a name at a NUL byte: 'a.jpg\\x00.txt' would be read as 'a.jpg' by some tools only."""
    return good(**{"images/train/a.jpg#.txt": b"x"}).replace(b"a.jpg#.txt", b"a.jpg\x00.txt")


def prepended():
    return b"<html><body>innocent page</body></html>\n" + good()


def truncated():
    data = good()
    return data[: len(data) // 2]


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width, height):
    """A tiny PNG that claims width x height 1-bit pixels (its IDAT is a few bytes of zeros)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * ((width // 8 + 1) * 16), 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def with_image(name, data):
    return good(**{f"images/train/{name}": data})


def jpeg(size=(64, 64)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def with_label(text, image="images/train/img000.jpg"):
    """A valid set whose first train image gets this label file content."""
    label = image.replace("images/", "labels/").rsplit(".", 1)[0] + ".txt"
    data = datagen.detection_zip(train=2, val=1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, text if info.filename == label else source.read(info))
    return buffer.getvalue()


def million_label_lines():
    rng = random.Random(0)
    # 2,000 distinct lines repeated: the period is longer than deflate's 32 KiB window, so this does not
    # compress like a bomb and reaches the label check.
    block = "".join(f"0 0.{rng.randrange(10, 99)} 0.{rng.randrange(10, 99)} 0.1 0.1\n" for _ in range(2000))
    return with_label(block * 500)


def with_yaml(text):
    data = datagen.detection_zip(train=3, val=1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, text if info.filename == "data.yaml" else source.read(info))
    return buffer.getvalue()


def coco(entries_change=None, annotation_change=None):
    document = datagen.coco_document([(f"img{i}.jpg", 64, 64, [(1, [8, 8, 20, 20])]) for i in range(3)])
    if entries_change:
        entries_change(document)
    if annotation_change:
        annotation_change(document)
    members = [(f"images/img{i}.jpg", jpeg()) for i in range(3)]
    return make_zip([*members, ("annotations/instances.json", json.dumps(document))])


def classify_missing_in_val():
    members = [
        (f"train/{c}/{i}.jpg", datagen.image_bytes(datagen.class_image(random.Random(i), c)))
        for c in ("a", "b")
        for i in range(3)
    ]
    members.append(("val/a/0.jpg", datagen.image_bytes(datagen.class_image(random.Random(9), "a"))))
    return make_zip(members)


SMALL = {"DATASET_MAX_MEMBERS": 20}

CORPUS = [
    # --- refused at upload: the zip's structure
    Case("zip-slip-parent", lambda: good(**{"../../evil.txt": b"x"}), "upload", "'..' path components are not allowed"),
    Case("zip-slip-nested", lambda: good(**{"images/../../evil.jpg": b"x"}), "upload", "'..' path components"),
    Case("absolute-path", lambda: good(**{"/etc/cron.d/evil": b"x"}), "upload", "absolute paths are not allowed"),
    Case("drive-letter", lambda: good(**{"C:/Windows/evil.jpg": b"x"}), "upload", "absolute paths are not allowed"),
    Case("backslash", lambda: good(**{"images\\..\\..\\evil.jpg": b"x"}), "upload", "backslashes are not allowed"),
    Case("dot-component", lambda: good(**{"images/./train/x.jpg": b"x"}), "upload", "empty or '.' path components"),
    Case("symlink", lambda: typed_member(stat.S_IFLNK), "upload", "symbolic links are not allowed"),
    Case("fifo", lambda: typed_member(stat.S_IFIFO), "upload", "special files (devices, pipes, sockets)"),
    Case("device", lambda: typed_member(stat.S_IFCHR), "upload", "special files (devices, pipes, sockets)"),
    Case("ratio-bomb", lambda: good(**{"zeros.bin": bytes(20 * 1024**2)}), "upload", "compression ratio"),
    Case("too-many-members", lambda: datagen.detection_zip(train=10, val=5), "upload", "the limit is 20", SMALL),
    Case(
        "total-size",
        lambda: good(**{"noise.bin": random.Random(1).randbytes(300_000)}),
        "upload",
        "the archive expands to more than 200000 bytes",
        {"DATASET_MAX_UNCOMPRESSED_BYTES": 200_000},
    ),
    Case("local-vs-central-size", local_size_lies, "upload", "declared sizes disagree"),
    Case("stored-size-lie", stored_size_lies, "upload", "declares 10000 bytes but stores 100 uncompressed"),
    Case("local-vs-central-name", local_name_lies, "upload", "the local header names a different file"),
    Case("end-record-count", end_record_lies, "upload", "end record declares"),
    Case("prepended-data", prepended, "upload", "bytes of other data before its first member"),
    Case("overlapping-members", overlapping, "upload", "overlapping members are a zip bomb technique"),
    Case("unsupported-method", unsupported_method, "upload", "compression method 99 is not supported"),
    Case("encrypted", encrypted, "upload", "encrypted members are not allowed"),
    Case("nested-zip", lambda: good(**{"more.zip": make_zip([("a", b"a")])}), "upload", "nested archives"),
    Case("nested-tar-gz", lambda: good(**{"more.tar.gz": b"x"}), "upload", "nested archives are not allowed"),
    Case("truncated", truncated, "upload", "the archive is truncated"),
    Case("not-a-zip", lambda: b"<!DOCTYPE html><html>upload.zip</html>", "upload", "not a valid zip archive"),
    Case("empty-zip", lambda: make_zip([]), "upload", "the archive is empty"),
    Case("only-folders", lambda: make_zip([("images/", b""), ("labels/", b"")]), "upload", "holds no files"),
    Case(
        "case-folding",
        lambda: good(**{"images/train/IMG000.jpg": b"x"}),
        "upload",
        "collides with 'images/train/img000.jpg' after case/Unicode normalisation",
    ),
    Case(
        "unicode-normalisation",
        lambda: good(**{"caf\u00e9.txt": b"1", "cafe\u0301.txt": b"2"}),
        "upload",
        "collides with",
    ),
    Case("control-character", lambda: good(**{"images/train/a\x1bb.jpg": b"x"}), "upload", "control characters"),
    Case("nul-in-name", nul_in_name, "upload", "control characters"),
    Case(
        "file-and-folder", lambda: good(**{"images/train/img000.jpg/x.txt": b"x"}), "upload", "needs it to be a folder"
    ),
    Case("too-deep", lambda: good(**{"/".join(["d"] * 40) + "/x.jpg": b"x"}), "upload", "too long or too deep"),
    Case("over-the-upload-limit", good, "upload", "the limit is 1000", {"DATASET_MAX_UPLOAD_BYTES": 1000}, "too_large"),
    # --- caught at ingest: the data set is invalid with the report
    Case("real-size-longer-than-declared", real_size_lies, "ingest", "damaged or truncated (Bad CRC-32"),
    Case(
        "decompression-bomb-png",
        lambda: with_image("bomb.png", bomb_png(30_000, 30_000)),
        "ingest",
        "decompression bomb refused",
    ),
    Case(
        "png-over-pixel-limit",
        lambda: with_image("big.png", bomb_png(10_000, 10_000)),
        "ingest",
        "10000x10000 pixels is above the limit",
    ),
    Case(
        "html-named-jpg",
        lambda: with_image("page.jpg", b"<html><body>404</body></html>"),
        "ingest",
        "not a readable JPEG/PNG/BMP/WEBP image",
    ),
    Case("zero-byte-image", lambda: with_image("empty.jpg", b""), "ingest", "empty file"),
    Case(
        "truncated-jpeg",
        lambda: with_image("half.jpg", jpeg()[:300]),
        "ingest",
        "truncated image: the file ends before its image data does",
    ),
    Case(
        "tiny-image", lambda: with_image("dot.jpg", jpeg((5, 5))), "ingest", "Ultralytics needs at least 10x10 pixels"
    ),
    Case(
        "class-id-out-of-range", lambda: with_label("7 0.5 0.5 0.2 0.2\n"), "ingest", "class id 7 is out of range 0..1"
    ),
    Case(
        "nan-coordinates",
        lambda: with_label("0 nan 0.5 0.2 0.2\n"),
        "ingest",
        "coordinates must be normalised to [0, 1]",
    ),
    Case(
        "negative-coordinates",
        lambda: with_label("0 -0.5 0.5 0.2 0.2\n"),
        "ingest",
        "coordinates must be normalised to [0, 1]",
    ),
    Case(
        "malformed-line",
        lambda: with_label("0,0.5,0.5,0.2,0.2\n"),
        "ingest",
        "expected 5 values (class x y w h), found 1",
    ),
    Case("million-label-lines", million_label_lines, "ingest", "1000000 label lines; the limit is 10000"),
    Case(
        "non-utf8-labels",
        lambda: with_label("0 0.5 0.5 0.2 0.2 \xff\xfe\n".encode("latin-1")),
        "ingest",
        "label file is not UTF-8 text",
    ),
    Case(
        "boxes-and-polygons",
        lambda: with_label("0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.2 0.1 0.2 0.2\n"),
        "ingest",
        "mixes boxes and polygons",
    ),
    Case(
        "yaml-python-tag",
        lambda: with_yaml("names: !!python/object/apply:os.system ['touch /tmp/pwned']\n"),
        "ingest",
        "data.yaml is not valid YAML",
    ),
    Case(
        "yaml-without-names",
        lambda: with_yaml("nc: 2\ndownload: https://example.com/x.zip\n"),
        "ingest",
        "data.yaml has no 'names' key",
    ),
    Case(
        "coco-file-name-outside",
        lambda: coco(entries_change=lambda d: [i.update(file_name="../../etc/passwd") for i in d["images"]]),
        "ingest",
        "'../../etc/passwd' is not in the archive",
    ),
    Case(
        "coco-unknown-category",
        lambda: coco(annotation_change=lambda d: [a.update(category_id=99) for a in d["annotations"]]),
        "ingest",
        "category_id 99 is not in 'categories'",
    ),
    Case(
        "coco-box-outside-image",
        lambda: coco(annotation_change=lambda d: [a.update(bbox=[50, 50, 40, 40]) for a in d["annotations"]]),
        "ingest",
        "lies outside the 64x64 image",
    ),
    Case("classify-class-missing-in-val", classify_missing_in_val, "ingest", "class 'b' has no usable images in val"),
    Case(
        "no-images",
        lambda: make_zip([("data.yaml", b"names: [a]\n"), ("labels/train/a.txt", b"0 0.5 0.5 0.1 0.1\n")]),
        "ingest",
        "label file has no matching image",
    ),
]
