"""Validation of an extracted data set in the Ultralytics detection layout.

Layout: data.yaml (only `names` is read), images/{train,val}/*, labels/{train,val}/*.txt.
Every problem is reported with the file, the line and the reason; user files are
never modified. Images without a label file are background images, not errors.
"""

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
PILLOW_FORMATS = {"JPEG", "PNG", "BMP", "WEBP"}
SPLITS = ("train", "val")
MAX_LABEL_LINES = 10_000


@dataclass
class ValidationReport:
    classes: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    fatal: list = field(default_factory=list)
    num_images: int = 0
    stats: dict = field(default_factory=dict)
    excluded: list = field(default_factory=list)

    def problem(self, file, reason, line=None):
        self.errors.append({"file": file, "line": line, "reason": reason})


def _read_names(root, report):
    data_yaml = root / "data.yaml"
    if not data_yaml.is_file():
        report.fatal.append({"file": "data.yaml", "line": None, "reason": "data.yaml is missing"})
        return []
    try:
        document = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        report.fatal.append({"file": "data.yaml", "line": None, "reason": f"data.yaml is not valid YAML: {exc}"})
        return []
    if not isinstance(document, dict) or "names" not in document:
        report.fatal.append({"file": "data.yaml", "line": None, "reason": "data.yaml has no 'names' key"})
        return []
    names = document["names"]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            keys = None
        if keys != list(range(len(names))):
            report.fatal.append({"file": "data.yaml", "line": None, "reason": "'names' keys must be the ids 0..N-1"})
            return []
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names or not all(isinstance(n, str | int) for n in names):
        report.fatal.append({"file": "data.yaml", "line": None, "reason": "'names' must be a non-empty list"})
        return []
    return [str(n) for n in names]


def _check_image(path, max_pixels):
    """Return (width, height) or raise ValueError with the reason."""
    if path.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        with Image.open(path, formats=sorted(PILLOW_FORMATS)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(f"{width}x{height} pixels is above the limit of {max_pixels}")
            image.verify()
    except Image.DecompressionBombError as exc:
        raise ValueError(f"decompression bomb refused ({exc})") from exc
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"not a readable JPEG/PNG/BMP/WEBP image ({exc})") from exc
    return width, height


def _check_label(path, relative, num_classes, report):
    """Return the class ids in a label file, or None when the file is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        report.problem(relative, "label file is not UTF-8 text")
        return None
    lines = text.splitlines()
    if len(lines) > MAX_LABEL_LINES:
        report.problem(relative, f"{len(lines)} label lines; the limit is {MAX_LABEL_LINES}")
        return None
    class_ids = []
    ok = True
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            report.problem(relative, f"expected 5 values (class x y w h), found {len(parts)}", number)
            ok = False
            continue
        try:
            class_id = int(parts[0])
            coords = [float(v) for v in parts[1:]]
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
        class_ids.append(class_id)
    return class_ids if ok else None


def dataset_validate(root, *, max_pixels, max_error_ratio=0.1):
    """Validate an extracted detection data set and return its report."""
    root = Path(root)
    report = ValidationReport()
    report.classes = _read_names(root, report)
    instances = {split: Counter() for split in SPLITS}
    images_per_split = {}
    sizes = []
    hashes = {}
    scanned = 0
    for split in SPLITS:
        image_dir = root / "images" / split
        label_dir = root / "labels" / split
        if not image_dir.is_dir():
            report.fatal.append({"file": f"images/{split}", "line": None, "reason": "folder is missing"})
            continue
        images = sorted(p for p in image_dir.rglob("*") if p.is_file())
        stems = set()
        count = 0
        scanned += len(images)
        for image in images:
            relative = image.relative_to(root).as_posix()
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                report.problem(relative, "not an image file type (jpg, jpeg, png, bmp, webp)")
                report.excluded.append(relative)
                continue
            try:
                sizes.append(_check_image(image, max_pixels))
            except ValueError as exc:
                report.problem(relative, str(exc))
                report.excluded.append(relative)
                continue
            digest = hashlib.sha256(image.read_bytes()).hexdigest()
            if digest in hashes:
                other = hashes[digest]
                reason = f"same content as {other}"
                if other.split("/")[1] != split:
                    reason += " (the same image is in train and val)"
                report.problem(relative, reason)
            else:
                hashes[digest] = relative
            stem = image.relative_to(image_dir).with_suffix("").as_posix()
            stems.add(stem)
            count += 1
            label = label_dir / f"{stem}.txt"
            if label.is_file() and report.classes:
                class_ids = _check_label(label, label.relative_to(root).as_posix(), len(report.classes), report)
                if class_ids is None:
                    report.excluded.append(relative)
                else:
                    instances[split].update(class_ids)
        images_per_split[split] = count
        if count == 0:
            report.fatal.append({"file": f"images/{split}", "line": None, "reason": "no images in this split"})
        if label_dir.is_dir():
            for label in sorted(label_dir.rglob("*.txt")):
                stem = label.relative_to(label_dir).with_suffix("").as_posix()
                if stem not in stems:
                    report.problem(label.relative_to(root).as_posix(), "label file has no matching image")
    report.num_images = sum(images_per_split.values())
    names = report.classes
    report.stats = {
        "images": images_per_split,
        "instances": {
            split: {names[c] if c < len(names) else str(c): n for c, n in sorted(counter.items())}
            for split, counter in instances.items()
        },
        "image_size": _size_stats(sizes),
    }
    bad = len(set(report.excluded))
    if scanned and bad / scanned > max_error_ratio:
        report.fatal.append(
            {
                "file": None,
                "line": None,
                "reason": f"{bad} of {scanned} image files are unusable, above the {max_error_ratio:.0%} threshold",
            }
        )
    return report


def _size_stats(sizes):
    if not sizes:
        return {}
    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    return {
        "min": [min(widths), min(heights)],
        "max": [max(widths), max(heights)],
        "mean": [round(sum(widths) / len(widths), 1), round(sum(heights) / len(heights), 1)],
    }
