"""Every supported layout, generated, uploaded through the API and ingested, with the expected counts,
and the Ultralytics-ready copy a worker on another node builds from storage."""

import io
import json
import zipfile
from collections import Counter

import pytest
import yaml

from datasets.cache import dataset_local_copy
from datasets.choices import DatasetStatus
from tests import datagen
from tests.datasets.conftest import files_under

pytestmark = pytest.mark.django_db


def relative_files(root):
    return sorted(p.relative_to(root).as_posix() for p in files_under(root))


def test_ultralytics_split_layout(user, ingested, other_node):
    dataset = ingested(user, datagen.detection_zip(train=10, val=4, top_folder="shapes"))

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.task, dataset.format, dataset.classes) == ("detect", "yolo", ["square", "disc"])
    assert dataset.num_images == 14
    assert dataset.stats["images"] == {"train": 10, "val": 4}
    assert dataset.stats["split"] == {"auto": False}
    assert sum(dataset.stats["instances"]["train"].values()) > 10
    other_node()
    root = dataset_local_copy(dataset)
    assert relative_files(root) == sorted(
        ["data.yaml"]
        + [f"images/train/img{i:03d}.jpg" for i in range(10)]
        + [f"labels/train/img{i:03d}.txt" for i in range(10)]
        + [f"images/val/img{i:03d}.jpg" for i in range(4)]
        + [f"labels/val/img{i:03d}.txt" for i in range(4)]
    )
    with zipfile.ZipFile(io.BytesIO(datagen.detection_zip(train=10, val=4, top_folder="shapes"))) as archive:
        assert (root / "labels/val/img002.txt").read_bytes() == archive.read("shapes/labels/val/img002.txt")
        assert (root / "images/train/img005.jpg").read_bytes() == archive.read("shapes/images/train/img005.jpg")


def test_roboflow_split_folders_with_valid_and_relative_paths(user, ingested, other_node):
    dataset = ingested(user, datagen.split_folders_zip(train=8, val=4))

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.format, dataset.classes, dataset.num_images) == ("yolo-split-folders", ["square", "disc"], 12)
    assert dataset.stats["images"] == {"train": 8, "val": 4}
    # '../train/images' points outside the archive's root: reported, never followed.
    reasons = [w["reason"] for w in dataset.warnings]
    assert any(r.startswith("'train: ../train/images' points outside the archive and is ignored") for r in reasons)
    other_node()
    root = dataset_local_copy(dataset)
    assert len(list((root / "images" / "val").iterdir())) == 4
    assert len(list((root / "labels" / "train").iterdir())) == 8


@pytest.mark.parametrize("names_file", ["data.yaml", "classes.txt"])
def test_flat_layout_is_split_by_class_with_the_chosen_ratio(user, ingested, other_node, names_file):
    dataset = ingested(user, datagen.flat_detection_zip(count=40, names_file=names_file, background=5), val_ratio=0.25)

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.format, dataset.classes) == ("yolo-flat", ["square", "disc"])
    assert dataset.num_images == 45
    assert dataset.stats["images"] == {"train": 34, "val": 11}  # round(45 * 0.25)
    assert dataset.stats["background"]["val"] >= 1  # background is its own stratum
    assert dataset.stats["split"] == {"auto": True}
    for class_name in ("square", "disc"):
        assert dataset.stats["images_per_class"]["val"][class_name] >= 1
    other_node()
    root = dataset_local_copy(dataset)
    val_images = sorted(p.name for p in (root / "images" / "val").iterdir())
    assert len(val_images) == 11
    assert len(list((root / "images" / "train").iterdir())) == 34
    # Background images have no label file; every other image keeps its own.
    assert len(list((root / "labels" / "val").iterdir())) == len([n for n in val_images if n.startswith("img")])


def test_the_auto_split_is_seeded_and_the_same_for_the_same_upload(user, other_user, ingested):
    data = datagen.flat_detection_zip(count=30)

    first = ingested(user, data)
    second = ingested(other_user, data)
    third = ingested(other_user, data, name="reseeded", split_seed=7)

    assert first.layout_sha256 == second.layout_sha256
    assert third.layout_sha256 != first.layout_sha256
    val_first = {f.path for f in first.files.filter(split="val", role="image")}
    val_third = {f.path for f in third.files.filter(split="val", role="image")}
    assert len(val_first) == len(val_third) == 6
    assert val_first != val_third


def test_segmentation_polygons(user, ingested, other_node):
    dataset = ingested(user, datagen.segmentation_zip(train=8, val=4))

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.task, dataset.format, dataset.classes) == ("segment", "yolo", ["triangle", "diamond"])
    assert dataset.num_images == 12
    other_node()
    root = dataset_local_copy(dataset)
    label = (root / "labels" / "train" / "img000.txt").read_text().splitlines()[0].split()
    assert len(label) in {7, 9}  # a triangle or a diamond
    assert yaml.safe_load((root / "data.yaml").read_text())["names"] == {0: "triangle", 1: "diamond"}


def test_a_segmentation_set_may_be_trained_as_detection(user, ingested):
    dataset = ingested(user, datagen.segmentation_zip(train=4, val=2), task="detect")

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert dataset.task == "detect"


def test_classification_split_folders(user, ingested, other_node):
    dataset = ingested(user, datagen.classification_zip(train=6, val=2))

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.task, dataset.format, dataset.classes) == ("classify", "classify", ["disc", "square"])
    assert dataset.num_images == 16
    assert dataset.stats["images_per_class"] == {"train": {"disc": 6, "square": 6}, "val": {"disc": 2, "square": 2}}
    other_node()
    root = dataset_local_copy(dataset)
    assert sorted(p.name for p in root.iterdir()) == ["train", "val"]
    assert sorted(p.name for p in (root / "val").iterdir()) == ["disc", "square"]
    assert len(list((root / "train" / "square").iterdir())) == 6


def test_classification_one_folder_per_class_is_split_per_class(user, ingested, other_node):
    dataset = ingested(user, datagen.classification_flat_zip(per_class=10), val_ratio=0.3)

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.task, dataset.format) == ("classify", "classify-flat")
    assert dataset.stats["images_per_class"] == {"train": {"disc": 7, "square": 7}, "val": {"disc": 3, "square": 3}}
    other_node()
    root = dataset_local_copy(dataset)
    assert Counter(p.parent.name for p in (root / "val").rglob("*.jpg")) == {"disc": 3, "square": 3}


def test_coco_instances_are_converted_to_yolo_boxes(user, ingested, other_node):
    data = datagen.coco_zip(train=8, val=4)
    dataset = ingested(user, data)

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.task, dataset.format, dataset.classes) == ("detect", "coco", ["square", "disc"])
    assert dataset.stats["images"] == {"train": 8, "val": 4}
    other_node()
    root = dataset_local_copy(dataset)
    document = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("annotations/instances_train.json"))
    first = document["annotations"][0]
    x, y, w, h = first["bbox"]
    name = document["images"][first["image_id"] - 1]["file_name"]
    line = (root / "labels" / "train" / name.replace(".jpg", ".txt")).read_text().splitlines()[0].split()
    assert int(line[0]) == first["category_id"] - 1  # ids 1, 2 become classes 0, 1
    assert [float(v) for v in line[1:]] == pytest.approx([(x + w / 2) / 64, (y + h / 2) / 64, w / 64, h / 64], abs=1e-5)
    assert (root / "images" / "train" / name).is_file()


def test_coco_with_polygons_becomes_segmentation_and_one_file_is_auto_split(user, ingested, other_node):
    dataset = ingested(user, datagen.coco_zip(train=8, val=2, polygons=True, split_files=False))

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert (dataset.task, dataset.format) == ("segment", "coco")
    assert dataset.stats["images"] == {"train": 8, "val": 2}
    assert dataset.stats["split"] == {"auto": True}
    other_node()
    root = dataset_local_copy(dataset)
    label = next((root / "labels" / "val").iterdir()).read_text().splitlines()[0].split()
    assert len(label) == 9  # class + 4 corners


def test_junk_from_macos_zips_is_skipped(user, ingested):
    data = datagen.detection_zip(train=3, val=1, top_folder="shapes")
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("__MACOSX/shapes/._data.yaml", b"\x00\x05\x16\x07")
        archive.writestr("shapes/.DS_Store", b"\x00\x00\x00\x01Bud1")
        archive.writestr("shapes/images/train/._img000.jpg", b"\x00\x05\x16\x07")
    dataset = ingested(user, buffer.getvalue())

    assert dataset.status == DatasetStatus.READY, dataset.errors
    assert dataset.num_images == 4
    assert dataset.errors == []


def test_a_readme_is_ignored_with_a_warning(user, ingested):
    dataset = ingested(user, datagen.detection_zip(train=3, val=1, extra={"README.md": "# shapes\n"}))

    assert dataset.status == DatasetStatus.READY
    assert {
        "file": None,
        "line": None,
        "reason": "1 files are not part of the layout and were ignored (README.md, ...)",
    } in (dataset.warnings)
    assert dataset.files.get(path="README.md").status == "ignored"


def test_an_unrecognised_layout_is_invalid_with_the_supported_ones_listed(user, ingested, media_root):
    dataset = ingested(user, datagen._zip({"notes/a.txt": "x", "notes/b.txt": "y"}))

    assert dataset.status == DatasetStatus.INVALID
    assert dataset.errors[0]["reason"].startswith("could not recognise the layout. Supported: images/{train,val}/")


def test_a_task_that_does_not_fit_the_layout_is_invalid(user, ingested):
    dataset = ingested(user, datagen.detection_zip(train=2, val=1), task="classify")

    assert dataset.status == DatasetStatus.INVALID
    assert dataset.errors[0]["reason"] == (
        "the task 'classify' was chosen, but the archive is in the Ultralytics YOLO "
        "(images/{train,val} + labels/{train,val}) layout"
    )
