"""The Ultralytics YOLO layouts (split, split folders, flat) and YOLO label files.

A label line is `class x y w h` (a box) or `class x1 y1 x2 y2 x3 y3 ...` (a
polygon), every coordinate normalised to [0, 1]. The checks follow what
Ultralytics' own label check would refuse or misread, but every problem is
reported instead of silently dropping the image, and the file is never
rewritten.
"""

import math
from collections import Counter
from dataclasses import dataclass

from datasets.choices import DatasetFormat, DatasetTask, FileRole, FileStatus
from datasets.formats.common import Sample, is_image_name, parts_of, split_alias

NOT_AN_IMAGE = "not an image file type (jpg, jpeg, png, bmp, webp)"


@dataclass(frozen=True)
class LabelLimits:
    max_bytes: int = 32 * 1024 * 1024
    max_lines: int = 10_000


def _image_entry(fmt, parts):
    """(split or None, path inside the split) when `parts` is an image-folder file of this layout."""
    if fmt == DatasetFormat.YOLO and len(parts) >= 3 and parts[0].lower() == "images" and split_alias(parts[1]):
        return split_alias(parts[1]), "/".join(parts[2:])
    if (
        fmt == DatasetFormat.YOLO_SPLIT_FOLDERS
        and len(parts) >= 3
        and split_alias(parts[0])
        and parts[1].lower() == "images"
    ):
        return split_alias(parts[0]), "/".join(parts[2:])
    if fmt == DatasetFormat.YOLO_FLAT and len(parts) >= 2 and parts[0].lower() == "images":
        return None, "/".join(parts[1:])
    return False


def _label_entry(fmt, parts):
    if fmt == DatasetFormat.YOLO and len(parts) >= 3 and parts[0].lower() == "labels" and split_alias(parts[1]):
        return split_alias(parts[1]), "/".join(parts[2:])
    if (
        fmt == DatasetFormat.YOLO_SPLIT_FOLDERS
        and len(parts) >= 3
        and split_alias(parts[0])
        and parts[1].lower() == "labels"
    ):
        return split_alias(parts[0]), "/".join(parts[2:])
    if fmt == DatasetFormat.YOLO_FLAT and len(parts) >= 2 and parts[0].lower() == "labels":
        return None, "/".join(parts[1:])
    return False


def _stem(name):
    dot = name.rfind(".")
    return name[:dot] if dot > name.rfind("/") else name


def collect_yolo(fmt, files, report):
    """The samples of a YOLO layout, with their label files paired the way Ultralytics pairs them."""
    labels = {}
    samples = []
    set_aside = []
    for path in files:
        parts = parts_of(path)
        entry = _label_entry(fmt, parts)
        if entry and path.lower().endswith(".txt"):
            split, inside = entry
            report.file(path, FileRole.LABEL)
            if split == "test":
                set_aside.append(path)
            else:
                labels[(split, _stem(inside))] = path
            continue
        entry = _image_entry(fmt, parts)
        if entry is False:
            continue
        split, inside = entry
        if split == "test":
            report.file(path, FileRole.IMAGE)
            set_aside.append(path)
            continue
        report.file(path, FileRole.IMAGE)
        sample = Sample(path=path, split=split, name_in_split=inside)
        if not is_image_name(path):
            report.problem(path, NOT_AN_IMAGE)
            report.exclude(path)
            sample.excluded = True
        samples.append(sample)
    if set_aside:
        report.warning(None, f"the test split is set aside: {len(set_aside)} files (only train and val are used)")
    used_labels = {}
    for sample in samples:
        key = (sample.split, _stem(sample.name_in_split))
        label = labels.get(key)
        if label is None:
            continue
        if label in used_labels:
            report.problem(sample.path, f"shares its label file {label} with {used_labels[label]}")
            report.exclude(sample.path)
            sample.excluded = True
            continue
        used_labels[label] = sample.path
        sample.label = label
    for label in sorted(labels.values()):
        if label not in used_labels:
            report.problem(label, "label file has no matching image")
    return samples


def read_label_lines(path, relative, limits, report):
    """[(line number, tokens)] of a label file's non-blank lines, or None when the file is unusable."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        report.problem(relative, f"label file is {size} bytes; the limit is {limits.max_bytes}")
        return None
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        report.problem(relative, "label file is not UTF-8 text")
        return None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > limits.max_lines:
        report.problem(relative, f"{len(lines)} label lines; the limit is {limits.max_lines}")
        return None
    return [(number, line.split()) for number, line in enumerate(lines, start=1) if line.strip()]


def is_polygon(count):
    return count >= 7 and count % 2 == 1


def resolve_task(requested, token_files):
    """Segmentation when every label line is a polygon; detection otherwise (Ultralytics boxes polygons itself)."""
    if requested:
        return requested
    shapes = Counter()
    for lines in token_files:
        for _, tokens in lines:
            shapes["polygon" if is_polygon(len(tokens)) else "box" if len(tokens) == 5 else "other"] += 1
    return DatasetTask.SEGMENT if shapes["polygon"] and not shapes["box"] else DatasetTask.DETECT


def check_label_rows(relative, lines, *, task, num_classes, polygons_seen, report):
    """Rows [(class id, coordinates)] of a label file, or None when a line is wrong (every line is reported)."""
    rows = []
    ok = True
    shapes = set()
    seen = {}
    for number, tokens in lines:
        count = len(tokens)
        if task == DatasetTask.SEGMENT:
            if not is_polygon(count):
                report.problem(
                    relative, f"expected a polygon (class x1 y1 x2 y2 x3 y3 ...), found {count} values", number
                )
                ok = False
                continue
        elif count != 5 and not is_polygon(count):
            expected = "5 values (class x y w h) or a polygon" if polygons_seen else "5 values (class x y w h)"
            report.problem(relative, f"expected {expected}, found {count}", number)
            ok = False
            continue
        try:
            class_id = int(tokens[0])
            coords = tuple(float(v) for v in tokens[1:])
        except ValueError:
            report.problem(relative, "non-numeric value", number)
            ok = False
            continue
        if not 0 <= class_id < num_classes:
            report.problem(relative, f"class id {class_id} is out of range 0..{num_classes - 1}", number)
            ok = False
        if any(math.isnan(c) or not 0.0 <= c <= 1.0 for c in coords):
            report.problem(relative, "coordinates must be normalised to [0, 1]", number)
            ok = False
        shapes.add("box" if count == 5 else "polygon")
        key = " ".join(tokens)
        if key in seen:
            report.warning(relative, f"repeats line {seen[key]}; Ultralytics drops the repeat", number)
        else:
            seen[key] = number
        rows.append((class_id, coords))
    if ok and len(shapes) > 1:
        report.problem(relative, "mixes boxes and polygons in one file; Ultralytics would misread the boxes")
        ok = False
    return rows if ok else None


def check_yolo_labels(root, samples, *, classes, requested_task, limits, report):
    """Read and check every label file; returns the task. Samples with a bad label file are excluded."""
    tokens = {}
    for sample in samples:
        if sample.label and not sample.excluded:
            lines = read_label_lines(root / sample.label, sample.label, limits, report)
            if lines is None:
                _exclude_for_label(sample, report)
            else:
                tokens[sample.path] = lines
    task = resolve_task(requested_task, tokens.values())
    if not classes:
        return task
    polygons_seen = any(is_polygon(len(t)) for lines in tokens.values() for _, t in lines)
    for sample in samples:
        if sample.path not in tokens:
            if not sample.excluded:
                sample.rows = []
            continue
        rows = check_label_rows(
            sample.label,
            tokens[sample.path],
            task=task,
            num_classes=len(classes),
            polygons_seen=polygons_seen,
            report=report,
        )
        if rows is None:
            _exclude_for_label(sample, report)
        else:
            sample.rows = rows
            report.file(sample.label).status = FileStatus.OK
    return task


def _exclude_for_label(sample, report):
    sample.excluded = True
    report.exclude(sample.path)
    report.file(sample.label).status = FileStatus.EXCLUDED
