"""Validation of an extracted upload, in any recognised layout.

The steps: recognise the layout, read the class names (or categories, or
class folders), pair images with labels, decode every image, check every
label line, set duplicates aside, split train/val when the upload has no
split, then decide: invalid (a fatal problem, or more unusable images than the
threshold allows) or ready, with the usable samples and where each goes in the
Ultralytics layout. Every problem is reported with its file, line and reason;
user files are never modified. Images without labels are background images.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from datasets.choices import DatasetFormat, DatasetTask, FileRole, FileStatus
from datasets.formats.classify import check_classify_splits, collect_classify
from datasets.formats.coco import coco_candidates, collect_coco, load_coco_documents
from datasets.formats.common import SPLITS
from datasets.formats.layout import SUPPORTED_LAYOUTS, assign_destinations, detect_format, task_fits_format
from datasets.formats.names import read_class_names
from datasets.formats.split import stratified_split, stratum_keys
from datasets.formats.yolo import LabelLimits, check_yolo_labels, collect_yolo
from datasets.report import ValidationReport
from datasets.validation.images import ImageProblem, inspect_image, suffix_matches
from datasets.validation.stats import dataset_stats

__all__ = ["LabelLimits", "ValidationReport", "dataset_validate"]

SPLIT_RANK = {"train": 0, "val": 1, None: 2}
CLASSIFY_FORMATS = {DatasetFormat.CLASSIFY, DatasetFormat.CLASSIFY_FLAT}


def _list_files(root):
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file())


def _check_images(root, samples, *, max_pixels, threads, report, progress, known):
    todo = [s for s in samples if not s.excluded]

    def check(sample):
        try:
            ready = known.get(sample.path)
            return ready.result() if ready is not None else inspect_image(root / sample.path, max_pixels)
        except ImageProblem as exc:
            return exc

    mapper = ThreadPoolExecutor(max_workers=threads) if threads > 1 else None
    try:
        results = mapper.map(check, todo) if mapper else map(check, todo)
        for done, (sample, result) in enumerate(zip(todo, results, strict=True), start=1):
            if isinstance(result, ImageProblem):
                report.problem(sample.path, str(result))
                report.exclude(sample.path)
                sample.excluded = True
            else:
                sample.width, sample.height = result.width, result.height
                sample.sha256, sample.image_format = result.sha256, result.format
                if not suffix_matches(root / sample.path, result.format):
                    report.warning(sample.path, f"is a {result.format} file with a {Path(sample.path).suffix} name")
            if progress is not None:
                progress(done / len(todo))
    finally:
        if mapper:
            mapper.shutdown()


def _check_coco_sizes(samples, report):
    for sample in samples:
        if sample.excluded or sample.coco_size is None:
            continue
        if sample.coco_size not in {(sample.width, sample.height), (sample.height, sample.width)}:
            width, height = sample.coco_size
            report.problem(
                sample.path, f"the COCO file says {width}x{height} but the image is {sample.width}x{sample.height}"
            )
            report.exclude(sample.path)
            sample.excluded = True


def _set_duplicates_aside(samples, report):
    """A second copy of an image (by content) is excluded; a copy across train and val would leak."""
    first = {}
    duplicates = 0
    for sample in sorted(samples, key=lambda s: (SPLIT_RANK[s.split], s.path)):
        if sample.excluded:
            continue
        other = first.get(sample.sha256)
        if other is None:
            first[sample.sha256] = sample
            continue
        reason = f"same content as {other.path}"
        if other.split and sample.split and other.split != sample.split:
            reason += " (the same image is in train and val)"
        report.problem(sample.path, reason)
        report.exclude(sample.path)
        sample.excluded = True
        duplicates += 1
    return duplicates


def _split_folder(fmt, split):
    return {
        DatasetFormat.YOLO: f"images/{split}",
        DatasetFormat.YOLO_SPLIT_FOLDERS: f"{split}/images",
        DatasetFormat.CLASSIFY: split,
    }.get(fmt)


def _record_outcome(report, samples, task):
    index_of = {name: index for index, name in enumerate(report.classes)}
    for sample in samples:
        record = report.file(sample.path, FileRole.IMAGE)
        record.split = sample.split or ""
        if sample.label:
            label = report.file(sample.label)
            label.split = record.split
            label.status = FileStatus.EXCLUDED if sample.excluded else FileStatus.OK
        if sample.excluded:
            continue
        record.width, record.height = sample.width, sample.height
        if task == DatasetTask.CLASSIFY:
            record.class_ids = {index_of[sample.class_name]}
            record.status = FileStatus.OK
        else:
            ids = [class_id for class_id, _ in sample.rows or ()]
            record.class_ids, record.instances = set(ids), len(ids)
            record.status = FileStatus.OK if ids else FileStatus.BACKGROUND


def dataset_validate(
    root,
    *,
    max_pixels,
    max_error_ratio=0.1,
    val_ratio=0.2,
    split_seed=0,
    task=None,
    threads=1,
    label_limits=None,
    max_annotation_bytes=256 * 1024**2,
    max_listed=1000,
    progress=None,
    image_facts=None,
    files=None,
):
    """Validate an extracted upload and return its report (see the module docstring).

    `image_facts` maps image paths to futures of inspect_image_bytes already
    running (ingest starts them while reading the archive, so each image is
    decoded once, from memory). `files` lists every file of the upload when
    not all of them are under `root` (ingest writes only the small ones).
    """
    root = Path(root)
    report = ValidationReport(max_listed=max_listed)
    files = sorted(files) if files is not None else _list_files(root)
    for path in files:
        report.file(path)
    documents = []
    if task != DatasetTask.CLASSIFY and coco_candidates(files):
        documents = load_coco_documents(root, files, max_bytes=max_annotation_bytes, report=report)
    fmt = detect_format(files, has_coco=bool(documents))
    if fmt is None:
        report.fail(None, SUPPORTED_LAYOUTS)
        return report
    report.format = fmt
    if task and not task_fits_format(task, fmt):
        report.fail(None, f"the task {task!r} was chosen, but the archive is in the {DatasetFormat(fmt).label} layout")
        return report
    classify = fmt in CLASSIFY_FORMATS
    if fmt == DatasetFormat.COCO:
        samples, classes, resolved = collect_coco(documents, files, requested_task=task, report=report)
    elif classify:
        samples, classes = collect_classify(fmt, files, report)
        resolved = DatasetTask.CLASSIFY
    else:
        classes = read_class_names(root, files, report)
        samples = collect_yolo(fmt, files, report)
    report.classes = classes
    _check_images(
        root,
        samples,
        max_pixels=max_pixels,
        threads=threads,
        report=report,
        progress=progress,
        known=image_facts or {},
    )
    if fmt in {DatasetFormat.YOLO, DatasetFormat.YOLO_SPLIT_FOLDERS, DatasetFormat.YOLO_FLAT}:
        resolved = check_yolo_labels(
            root, samples, classes=classes, requested_task=task, limits=label_limits or LabelLimits(), report=report
        )
    report.task = resolved
    _check_coco_sizes(samples, report)
    duplicates = _set_duplicates_aside(samples, report)
    usable = [s for s in samples if not s.excluded]
    auto = [s for s in usable if s.split is None]
    report.auto_split = bool(auto)
    if auto:
        keys = stratum_keys(auto, classes, classify=classify)
        stratified_split(auto, keys, val_ratio=val_ratio, seed=split_seed, both_splits_per_stratum=classify)
    if not samples:
        report.fail(None, "no images found in the layout")
    else:
        for split in SPLITS:
            if not any(s.split == split for s in usable):
                report.fail(_split_folder(fmt, split), "no images in this split")
        if classify and classes:
            check_classify_splits(usable, classes, report)
    bad = len(samples) - len(usable) - duplicates
    if samples and bad / len(samples) > max_error_ratio:
        report.fail(
            None,
            f"{bad} of {len(samples)} image files are unusable, above the {max_error_ratio:.0%} threshold",
        )
    if not report.fatal:
        assign_destinations(usable, resolved)
    _record_outcome(report, samples, resolved)
    ignored = [r.path for r in report.files.values() if r.role == FileRole.OTHER]
    if ignored:
        report.warning(None, f"{len(ignored)} files are not part of the layout and were ignored ({ignored[0]}, ...)")
    report.samples = usable
    report.num_images = len(usable)
    report.stats = dataset_stats(usable, classes, classify=classify)
    return report
