"""Recognising an upload's layout, and where each usable file goes in the Ultralytics layout."""

from pathlib import PurePosixPath

from datasets.choices import DatasetFormat, DatasetTask
from datasets.formats.common import is_image_name, parts_of, split_alias

SUPPORTED_LAYOUTS = (
    "could not recognise the layout. Supported: images/{train,val}/ + labels/{train,val}/ (+ data.yaml or "
    "classes.txt); {train,valid}/images/ + labels/; images/ + labels/ without splits; a COCO instances JSON "
    "with its images; {train,val}/<class>/ images; or one folder of images per class"
)


def detect_format(files, *, has_coco):
    """The DatasetFormat of a list of relative file paths, or None."""
    if has_coco:
        return DatasetFormat.COCO
    yolo = split_folders = flat = classify = False
    tops_with_images = set()
    for path in files:
        parts = parts_of(path)
        head = parts[0].lower()
        if len(parts) >= 3 and head == "images" and split_alias(parts[1]):
            yolo = True
        elif len(parts) >= 3 and split_alias(parts[0]) and parts[1].lower() in {"images", "labels"}:
            split_folders = True
        elif len(parts) >= 2 and head in {"images", "labels"}:
            flat = True
        if len(parts) >= 3 and split_alias(parts[0]) in {"train", "val"} and is_image_name(path):
            classify = True
        if len(parts) >= 2 and is_image_name(path) and head not in {"images", "labels"}:
            tops_with_images.add(parts[0])
    if yolo:
        return DatasetFormat.YOLO
    if split_folders:
        return DatasetFormat.YOLO_SPLIT_FOLDERS
    if flat:
        return DatasetFormat.YOLO_FLAT
    if classify:
        return DatasetFormat.CLASSIFY
    if len(tops_with_images) >= 2:
        return DatasetFormat.CLASSIFY_FLAT
    return None


def task_fits_format(task, fmt):
    classify_format = fmt in {DatasetFormat.CLASSIFY, DatasetFormat.CLASSIFY_FLAT}
    return (task == DatasetTask.CLASSIFY) == classify_format


def _safe_parts(parts, reserved):
    # Ultralytics finds a label by replacing the last "/images/" of an image path with "/labels/":
    # a folder of that name below the split would send it to the wrong place.
    return [f"{p}_" if p.lower() in reserved else p for p in parts]


def _unique(candidate, taken, key):
    path = PurePosixPath(candidate)
    number = 1
    while key(candidate).casefold() in taken:
        number += 1
        candidate = str(path.with_name(f"{path.stem}-{number}{path.suffix}"))
    taken.add(key(candidate).casefold())
    return candidate


def _without_suffix(path):
    return str(PurePosixPath(path).with_suffix(""))


def assign_destinations(samples, task):
    """Set `dst` (and `dst_label`) on every usable sample: its place in the Ultralytics layout."""
    taken = set()
    for sample in sorted(samples, key=lambda s: (s.split, s.path)):
        if task == DatasetTask.CLASSIFY:
            inside = PurePosixPath(sample.name_in_split).parts
            sample.dst = _unique("/".join([sample.split, *inside]), taken, str)
            continue
        inside = _safe_parts(PurePosixPath(sample.name_in_split).parts, {"images", "labels"})
        # Unique by stem: a.jpg and a.png would share labels/a.txt.
        sample.dst = _unique("/".join(["images", sample.split, *inside]), taken, _without_suffix)
        stem = _without_suffix(sample.dst)[len("images/") :]
        sample.dst_label = f"labels/{stem}.txt"
