"""Classification layouts: {train,val}/<class>/* or one folder per class (split by the portal).

Ultralytics reads each split folder with torchvision's ImageFolder, which
numbers the classes of *that folder* in sorted order. A class missing from one
split would shift every later class id in it, so every class must have images
in both splits, and the class list is the sorted folder names.
"""

from datasets.choices import DatasetFormat, FileRole
from datasets.formats.common import Sample, is_image_name, parts_of, split_alias
from datasets.formats.yolo import NOT_AN_IMAGE


def collect_classify(fmt, files, report):
    """(samples, classes) of a classification layout."""
    candidates = []
    set_aside = 0
    loose = 0
    for path in files:
        parts = parts_of(path)
        if fmt == DatasetFormat.CLASSIFY:
            split = split_alias(parts[0]) if len(parts) >= 3 else None
            if split is None:
                loose += 1
                continue
            if split == "test":
                set_aside += 1
                report.file(path, FileRole.IMAGE)
                continue
            class_name, inside = parts[1], "/".join(parts[1:])
        else:
            if len(parts) < 2:
                loose += 1
                continue
            split, class_name, inside = None, parts[0], "/".join(parts)
        candidates.append((path, split, class_name, inside))
    with_images = {class_name for path, _, class_name, _ in candidates if is_image_name(path)}
    classes = sorted(with_images)
    samples = []
    empty_folders = set()
    for path, split, class_name, inside in candidates:
        if class_name not in with_images:
            empty_folders.add(class_name)
            continue
        report.file(path, FileRole.IMAGE)
        sample = Sample(path=path, split=split, class_name=class_name, name_in_split=inside, rows=[])
        if not is_image_name(path):
            report.problem(path, NOT_AN_IMAGE)
            report.exclude(path)
            sample.excluded = True
        samples.append(sample)
    if set_aside:
        report.warning(None, f"the test split is set aside: {set_aside} files (only train and val are used)")
    if loose:
        report.warning(None, f"{loose} files outside the class folders were ignored")
    for name in sorted(empty_folders):
        report.warning(None, f"folder {name!r} holds no images and is not a class")
    if len(classes) < 2:
        report.fail(
            None, f"a classification data set needs at least two class folders with images; found {len(classes)}"
        )
    return samples, classes


def check_classify_splits(samples, classes, report):
    """Every class needs usable images in train and in val (see the module docstring)."""
    present = {"train": set(), "val": set()}
    for sample in samples:
        if not sample.excluded and sample.split in present:
            present[sample.split].add(sample.class_name)
    for split, found in present.items():
        for class_name in classes:
            if class_name not in found:
                report.fail(
                    f"{split}/{class_name}",
                    f"class {class_name!r} has no usable images in {split}; Ultralytics numbers the classes of each "
                    "split folder, so every class needs images in train and val",
                )
