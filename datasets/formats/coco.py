"""COCO instances JSON, converted to YOLO labels.

Categories become classes in the order of their ids (ids need not be
contiguous: COCO's own run 1..90). A box [x, y, w, h] in pixels becomes
`class cx cy w h` normalised by the image size the JSON gives (checked against
the real image later). Crowd annotations (iscrowd=1) are skipped, as
Ultralytics' own converter does. For segmentation, an object drawn as several
polygons keeps the largest. Anything wrong in an annotation is reported with
its id and excludes its image.
"""

import json
import math
from collections import defaultdict
from pathlib import PurePosixPath

from datasets.choices import DatasetTask, FileRole, FileStatus
from datasets.formats.common import Sample, is_image_name

MAX_CANDIDATES = 16
EDGE_TOLERANCE_PX = 1.0


def coco_candidates(files):
    """JSON files where a COCO export puts them: the top folder or annotations/."""
    found = []
    for path in files:
        parts = PurePosixPath(path).parts
        if path.lower().endswith(".json") and (
            len(parts) == 1 or (len(parts) == 2 and parts[0].lower() in {"annotations", "labels"})
        ):
            found.append(path)
    return found if len(found) <= MAX_CANDIDATES else []


def load_coco_documents(root, files, *, max_bytes, report):
    """[(path, document)] of the COCO instance files in the upload."""
    documents = []
    for relative in coco_candidates(files):
        size = (root / relative).stat().st_size
        if size > max_bytes:
            report.fail(relative, f"{relative} is {size} bytes; the limit for an annotation file is {max_bytes}")
            continue
        try:
            document = json.loads((root / relative).read_bytes())
        except (ValueError, RecursionError) as exc:
            report.warning(relative, f"not valid JSON, ignored ({str(exc)[:200]})")
            continue
        if (
            isinstance(document, dict)
            and all(isinstance(document.get(k), list) for k in ("images", "categories"))
            and isinstance(document.get("annotations", []), list)
        ):
            documents.append((relative, document))
    return documents


def _split_of_document(relative):
    name = PurePosixPath(relative).stem.lower()
    if "train" in name:
        return "train"
    if "val" in name:
        return "val"
    if "test" in name:
        return "test"
    return None


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _categories(documents, report):
    reference = None
    for relative, document in documents:
        pairs = []
        for category in document["categories"]:
            if not isinstance(category, dict) or not isinstance(category.get("id"), int):
                report.fail(relative, "every category needs an integer 'id' and a 'name'")
                return None
            if not isinstance(category.get("name"), str) or not category["name"].strip():
                report.fail(relative, f"category {category['id']} has no name")
                return None
            pairs.append((category["id"], category["name"]))
        pairs.sort()
        if len({cid for cid, _ in pairs}) != len(pairs):
            report.fail(relative, "two categories share an id")
            return None
        if reference is None:
            reference = (relative, pairs)
        elif pairs != reference[1]:
            report.fail(relative, f"its categories differ from those of {reference[0]}")
            return None
    if not reference or not reference[1]:
        report.fail(documents[0][0] if documents else None, "the COCO file has no categories")
        return None
    return reference[1]


def _resolve(file_name, files, by_name):
    """The archive path of an image named in the JSON, or None."""
    if not isinstance(file_name, str) or not file_name:
        return None
    relative = PurePosixPath(file_name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        return None
    text = relative.as_posix()
    for candidate in (text, f"images/{text}"):
        if candidate in files:
            return candidate
    matches = by_name.get(relative.name, [])
    return matches[0] if len(matches) == 1 else None


def _polygon_area(points):
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area += x1 * y2 - x2 * y1
    return abs(area) / 2


def _clip(value, limit):
    """Clip a pixel coordinate that overshoots the edge by at most the tolerance; None if further out."""
    if -EDGE_TOLERANCE_PX <= value <= limit + EDGE_TOLERANCE_PX:
        return min(max(value, 0.0), limit)
    return None


def _box_row(annotation, width, height):
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        return None, "bbox must be [x, y, width, height] in pixels"
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return None, f"bbox {bbox} has no area"
    x1, y1, x2, y2 = (_clip(x, width), _clip(y, height), _clip(x + w, width), _clip(y + h, height))
    if None in (x1, y1, x2, y2) or x2 <= x1 or y2 <= y1:
        return None, f"bbox {bbox} lies outside the {width}x{height} image"
    return (((x1 + x2) / 2) / width, ((y1 + y2) / 2) / height, (x2 - x1) / width, (y2 - y1) / height), None


def _polygon_row(annotation, width, height):
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, dict):
        return None, "RLE masks are not supported; export polygons"
    if not isinstance(segmentation, list) or not segmentation:
        return None, "no polygon ('segmentation') for a segmentation data set"
    polygons = []
    for polygon in segmentation:
        if (
            not isinstance(polygon, list)
            or len(polygon) < 6
            or len(polygon) % 2
            or not all(_number(v) for v in polygon)
        ):
            return None, "a polygon must be a list of at least 3 x, y pairs"
        points = list(zip(polygon[0::2], polygon[1::2], strict=True))
        clipped = [(_clip(px, width), _clip(py, height)) for px, py in points]
        if any(None in point for point in clipped):
            return None, f"a polygon lies outside the {width}x{height} image"
        polygons.append(clipped)
    largest = max(polygons, key=_polygon_area)
    return tuple(v for px, py in largest for v in (px / width, py / height)), None


def collect_coco(documents, files, *, requested_task, report):
    """(samples, classes, task) from COCO documents; images the JSON does not list are set aside."""
    categories = _categories(documents, report)
    if categories is None:
        return [], [], requested_task or DatasetTask.DETECT
    classes = [name for _, name in categories]
    index_of = {cid: index for index, (cid, _) in enumerate(categories)}
    file_set = set(files)
    by_name = defaultdict(list)
    for path in files:
        by_name[PurePosixPath(path).name].append(path)
    samples = {}
    entries = {}
    crowd = multi = 0
    for relative, document in documents:
        record = report.file(relative, FileRole.ANNOTATIONS)
        record.status = FileStatus.OK
        split = _split_of_document(relative)
        if split == "test":
            record.status = FileStatus.IGNORED
            report.warning(relative, "a test annotation file is set aside (only train and val are used)")
            continue
        for position, image in enumerate(document["images"]):
            if not isinstance(image, dict) or "id" not in image:
                report.problem(relative, f"image entry {position} has no 'id'")
                continue
            width, height = image.get("width"), image.get("height")
            if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
                report.problem(relative, f"image {image['id']}: 'width' and 'height' must be positive integers")
                continue
            path = _resolve(image.get("file_name"), file_set, by_name)
            if path is None:
                report.problem(
                    relative, f"image {image['id']}: {str(image.get('file_name'))[:200]!r} is not in the archive"
                )
                continue
            if path in samples:
                report.problem(relative, f"image {image['id']}: {path} is listed twice")
                continue
            report.file(path, FileRole.IMAGE)
            samples[path] = Sample(
                path=path,
                split=split,
                name_in_split=PurePosixPath(path).name,
                coco_size=(width, height),
                generated=True,
                rows=[],
            )
            entries[(relative, image["id"])] = samples[path]
    shapes = {"box": [], "polygon": []}
    for relative, document in documents:
        if _split_of_document(relative) == "test":
            continue
        for position, annotation in enumerate(document.get("annotations", [])):
            label = f"annotation {annotation.get('id', position) if isinstance(annotation, dict) else position}"
            if not isinstance(annotation, dict):
                report.problem(relative, f"{label} is not an object")
                continue
            sample = entries.get((relative, annotation.get("image_id")))
            if sample is None:
                report.problem(relative, f"{label}: image_id {annotation.get('image_id')!r} is not in 'images'")
                continue
            if annotation.get("iscrowd"):
                crowd += 1
                continue
            if annotation.get("category_id") not in index_of:
                _bad(
                    report,
                    relative,
                    sample,
                    f"{label}: category_id {annotation.get('category_id')!r} is not in 'categories'",
                )
                continue
            width, height = sample.coco_size
            box, problem = _box_row(annotation, width, height)
            if problem:
                _bad(report, relative, sample, f"{label}: {problem}")
                continue
            polygon, polygon_problem = _polygon_row(annotation, width, height)
            if isinstance(annotation.get("segmentation"), list) and len(annotation["segmentation"]) > 1:
                multi += 1
            class_id = index_of[annotation["category_id"]]
            shapes["box"].append((sample, class_id, box, label, relative))
            shapes["polygon"].append((sample, class_id, polygon, label, relative, polygon_problem))
    if crowd:
        report.warning(None, f"{crowd} crowd annotations (iscrowd=1) were skipped, as Ultralytics' converter does")
    task = requested_task or (
        DatasetTask.SEGMENT
        if shapes["polygon"] and all(item[2] is not None for item in shapes["polygon"])
        else DatasetTask.DETECT
    )
    if task == DatasetTask.SEGMENT:
        if multi:
            report.warning(None, f"{multi} objects are drawn as several polygons; the largest of each is kept")
        for sample, class_id, polygon, label, relative, problem in shapes["polygon"]:
            if problem:
                _bad(report, relative, sample, f"{label}: {problem}")
            elif not sample.excluded:
                sample.rows.append((class_id, polygon))
    else:
        for sample, class_id, box, _, _ in shapes["box"]:
            if not sample.excluded:
                sample.rows.append((class_id, box))
    listed = set(samples)
    unlisted = [p for p in files if is_image_name(p) and p not in listed]
    if unlisted:
        report.warning(
            None, f"{len(unlisted)} images are not listed in the COCO file and were ignored ({unlisted[0]}, ...)"
        )
    for path in unlisted:
        report.file(path, FileRole.IMAGE)
    return [samples[p] for p in sorted(samples)], classes, task


def _bad(report, relative, sample, reason):
    report.problem(relative, reason)
    report.file(sample.path).add_problem(f"excluded: {reason} ({relative})", None, "error")
    sample.excluded = True
    sample.rows = None
    report.exclude(sample.path)
