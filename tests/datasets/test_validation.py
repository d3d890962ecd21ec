"""Validation of an extracted detection data set: every problem names its file and line."""

import io

import pytest
from PIL import Image

from datasets.formats.names import MISSING_NAMES
from datasets.validation import dataset_validate

MAX_PIXELS = 40_000_000

# (split, stem, (width, height), colour, label text or None for a background image)
GOOD_SET = [
    ("train", "img0", (64, 48), (200, 0, 0), "0 0.5 0.5 0.2 0.2\n"),
    ("train", "img1", (32, 32), (0, 200, 0), "1 0.3 0.3 0.1 0.1\n0 0.6 0.6 0.2 0.2\n"),
    ("train", "img2", (64, 64), (0, 0, 200), "1 0.5 0.5 0.5 0.5\n"),
    ("val", "img0", (48, 32), (200, 200, 0), "0 0.25 0.25 0.5 0.5\n"),
    ("val", "img1", (32, 48), (0, 200, 200), "1 0.75 0.75 0.1 0.1\n"),
]


def jpeg(size=(32, 32), colour=(128, 128, 128)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def write(root, relative, data):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def dataset_root(tmp_path):
    root = tmp_path / "data"
    write(root, "data.yaml", "names:\n  - square\n  - disc\n")
    for split, stem, size, colour, label in GOOD_SET:
        write(root, f"images/{split}/{stem}.jpg", jpeg(size, colour))
        if label is not None:
            write(root, f"labels/{split}/{stem}.txt", label)
    return root


def validate(root, **kwargs):
    return dataset_validate(root, max_pixels=MAX_PIXELS, **kwargs)


def errors_for(report, file):
    return [(e["line"], e["reason"]) for e in report.errors if e["file"] == file]


def test_a_good_set_is_fine_with_correct_stats(dataset_root):
    report = validate(dataset_root)

    assert report.fatal == []
    assert report.errors == []
    assert report.excluded == []
    assert report.classes == ["square", "disc"]
    assert report.num_images == 5
    assert report.stats == {
        "images": {"train": 3, "val": 2},
        "instances": {"train": {"square": 2, "disc": 2}, "val": {"square": 1, "disc": 1}},
        "background": {"train": 0, "val": 0},
        "images_per_class": {"train": {"square": 2, "disc": 2}, "val": {"square": 1, "disc": 1}},
        "image_size": {"min": [32, 32], "max": [64, 64], "mean": [48.0, 44.8]},
    }
    assert report.task == "detect"
    assert report.format == "yolo"


def test_names_may_be_a_mapping_of_ids(dataset_root):
    write(dataset_root, "data.yaml", "names:\n  0: square\n  1: disc\n")

    report = validate(dataset_root)

    assert report.fatal == []
    assert report.classes == ["square", "disc"]


def test_background_images_without_labels_are_not_errors(dataset_root):
    write(dataset_root, "images/train/empty_scene.jpg", jpeg((40, 40), (10, 10, 10)))
    write(dataset_root, "images/val/empty_scene.png", jpeg((40, 40), (20, 20, 20)))

    report = validate(dataset_root)

    assert report.errors == []
    assert report.fatal == []
    assert report.num_images == 7
    assert report.stats["images"] == {"train": 4, "val": 3}
    assert report.stats["instances"]["train"] == {"square": 2, "disc": 2}


def test_class_id_out_of_range(dataset_root):
    write(dataset_root, "labels/train/img0.txt", "0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n")

    report = validate(dataset_root, max_error_ratio=1.0)

    assert errors_for(report, "labels/train/img0.txt") == [(2, "class id 2 is out of range 0..1")]
    assert report.excluded == ["images/train/img0.jpg"]
    assert report.fatal == []


def test_negative_class_id_is_out_of_range(dataset_root):
    write(dataset_root, "labels/val/img1.txt", "-1 0.5 0.5 0.2 0.2\n")

    report = validate(dataset_root, max_error_ratio=1.0)

    assert errors_for(report, "labels/val/img1.txt") == [(1, "class id -1 is out of range 0..1")]


@pytest.mark.parametrize(
    "line",
    ["0 1.5 0.5 0.2 0.2", "0 0.5 -0.1 0.2 0.2", "0 0.5 0.5 0.2 1.0001", "0 nan 0.5 0.2 0.2", "0 0.5 0.5 inf 0.2"],
)
def test_coordinates_outside_unit_interval_or_nan(dataset_root, line):
    write(dataset_root, "labels/train/img1.txt", f"1 0.3 0.3 0.1 0.1\n\n{line}\n")

    report = validate(dataset_root, max_error_ratio=1.0)

    # Line 2 is blank and skipped, but still counted: the bad line is line 3.
    assert errors_for(report, "labels/train/img1.txt") == [(3, "coordinates must be normalised to [0, 1]")]
    assert "images/train/img1.jpg" in report.excluded


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("0 0.5 0.5 0.2", "expected 5 values (class x y w h), found 4"),
        ("0 0.5 0.5 0.2 0.2 0.9", "expected 5 values (class x y w h), found 6"),
        ("0,0.5,0.5,0.2,0.2", "expected 5 values (class x y w h), found 1"),
    ],
)
def test_malformed_line(dataset_root, line, reason):
    write(dataset_root, "labels/val/img0.txt", f"0 0.25 0.25 0.5 0.5\n{line}\n")

    report = validate(dataset_root, max_error_ratio=1.0)

    assert errors_for(report, "labels/val/img0.txt") == [(2, reason)]


@pytest.mark.parametrize("line", ["square 0.5 0.5 0.2 0.2", "0 x 0.5 0.2 0.2", "1.0 0.5 0.5 0.2 0.2"])
def test_non_numeric_value(dataset_root, line):
    write(dataset_root, "labels/train/img2.txt", f"{line}\n")

    report = validate(dataset_root, max_error_ratio=1.0)

    assert errors_for(report, "labels/train/img2.txt") == [(1, "non-numeric value")]


def test_every_bad_line_is_reported(dataset_root):
    write(dataset_root, "labels/train/img0.txt", "0 0.5 0.5 0.2\n0 0.5 0.5 0.2 0.2\nx 0 0 0 0\n5 2 0 0 0\n")

    report = validate(dataset_root, max_error_ratio=1.0)

    assert errors_for(report, "labels/train/img0.txt") == [
        (1, "expected 5 values (class x y w h), found 4"),
        (3, "non-numeric value"),
        (4, "class id 5 is out of range 0..1"),
        (4, "coordinates must be normalised to [0, 1]"),
    ]


def test_orphan_label_file(dataset_root):
    write(dataset_root, "labels/train/ghost.txt", "0 0.5 0.5 0.2 0.2\n")

    report = validate(dataset_root)

    assert report.errors == [
        {"file": "labels/train/ghost.txt", "line": None, "reason": "label file has no matching image"}
    ]
    assert report.num_images == 5


def test_corrupt_image_html_named_jpg(dataset_root):
    write(dataset_root, "images/train/page.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>")

    report = validate(dataset_root, max_error_ratio=1.0)

    [(line, reason)] = errors_for(report, "images/train/page.jpg")
    assert line is None
    assert reason.startswith("not a readable JPEG/PNG/BMP/WEBP image")
    assert report.excluded == ["images/train/page.jpg"]
    assert report.num_images == 5


def test_zero_byte_image(dataset_root):
    write(dataset_root, "images/val/blank.jpg", b"")

    report = validate(dataset_root, max_error_ratio=1.0)

    assert errors_for(report, "images/val/blank.jpg") == [(None, "empty file")]
    assert report.excluded == ["images/val/blank.jpg"]


def test_image_over_the_pixel_limit(dataset_root):
    report = dataset_validate(dataset_root, max_pixels=64 * 48 - 1, max_error_ratio=1.0)

    assert errors_for(report, "images/train/img0.jpg") == [(None, "64x48 pixels is above the limit of 3071")]
    assert errors_for(report, "images/train/img2.jpg") == [(None, "64x64 pixels is above the limit of 3071")]


def test_not_an_image_suffix(dataset_root):
    write(dataset_root, "images/train/notes.txt", "hello")

    report = validate(dataset_root, max_error_ratio=1.0)

    assert errors_for(report, "images/train/notes.txt") == [
        (None, "not an image file type (jpg, jpeg, png, bmp, webp)")
    ]


def test_duplicate_images_across_train_and_val(dataset_root):
    write(dataset_root, "images/val/copy.jpg", (dataset_root / "images/train/img1.jpg").read_bytes())

    report = validate(dataset_root)

    assert errors_for(report, "images/val/copy.jpg") == [
        (None, "same content as images/train/img1.jpg (the same image is in train and val)")
    ]
    assert report.errors[0]["file"] == "images/val/copy.jpg"


def test_duplicate_images_within_one_split(dataset_root):
    write(dataset_root, "images/train/img9.jpg", (dataset_root / "images/train/img0.jpg").read_bytes())

    report = validate(dataset_root)

    assert errors_for(report, "images/train/img9.jpg") == [(None, "same content as images/train/img0.jpg")]


def test_missing_data_yaml_is_fatal(dataset_root):
    (dataset_root / "data.yaml").unlink()

    report = validate(dataset_root)

    assert report.fatal == [{"file": "data.yaml", "line": None, "reason": MISSING_NAMES}]
    assert report.classes == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("nc: 2\ntrain: images/train\n", "data.yaml has no 'names' key"),
        ("- square\n- disc\n", "data.yaml has no 'names' key"),
        ("names: []\n", "'names' must be a non-empty list"),
        ("names:\n  0: square\n  2: disc\n", "'names' keys must be the ids 0..N-1"),
    ],
)
def test_data_yaml_without_usable_names_is_fatal(dataset_root, text, reason):
    write(dataset_root, "data.yaml", text)

    report = validate(dataset_root)

    assert report.fatal == [{"file": "data.yaml", "line": None, "reason": reason}]
    assert report.classes == []


def test_data_yaml_that_is_not_yaml_is_fatal(dataset_root):
    write(dataset_root, "data.yaml", "names: [square, disc\n")

    report = validate(dataset_root)

    assert [f["file"] for f in report.fatal] == ["data.yaml"]
    assert report.fatal[0]["reason"].startswith("data.yaml is not valid YAML")


def test_missing_split_is_fatal(dataset_root):
    for path in (dataset_root / "images" / "val").iterdir():
        path.unlink()

    report = validate(dataset_root)

    assert report.fatal == [{"file": "images/val", "line": None, "reason": "no images in this split"}]


def test_too_many_unusable_images_is_fatal(dataset_root):
    write(dataset_root, "labels/train/img0.txt", "7 0.5 0.5 0.2 0.2\n")

    assert validate(dataset_root, max_error_ratio=0.5).fatal == []
    report = validate(dataset_root, max_error_ratio=0.1)

    assert report.fatal == [
        {"file": None, "line": None, "reason": "1 of 5 image files are unusable, above the 10% threshold"}
    ]


def test_user_files_are_not_modified(dataset_root):
    write(dataset_root, "labels/train/img0.txt", "9 9 9 9 9\n")
    before = {p: p.read_bytes() for p in dataset_root.rglob("*") if p.is_file()}

    validate(dataset_root)

    assert {p: p.read_bytes() for p in dataset_root.rglob("*") if p.is_file()} == before
