"""Counts per class and split, and image size statistics, of the images that reach training."""

from collections import Counter

from datasets.formats.common import SPLITS


def size_stats(sizes):
    if not sizes:
        return {}
    widths = [w for w, _ in sizes]
    heights = [h for _, h in sizes]
    return {
        "min": [min(widths), min(heights)],
        "max": [max(widths), max(heights)],
        "mean": [round(sum(widths) / len(widths), 1), round(sum(heights) / len(heights), 1)],
    }


def dataset_stats(samples, classes, *, classify):
    """Statistics of the usable samples (excluded ones are not counted)."""

    def name(class_id):
        return classes[class_id] if class_id < len(classes) else str(class_id)

    images = dict.fromkeys(SPLITS, 0)
    background = dict.fromkeys(SPLITS, 0)
    instances = {split: Counter() for split in SPLITS}
    images_per_class = {split: Counter() for split in SPLITS}
    for sample in samples:
        images[sample.split] += 1
        if classify:
            images_per_class[sample.split][sample.class_name] += 1
            continue
        ids = [class_id for class_id, _ in sample.rows or ()]
        if not ids:
            background[sample.split] += 1
        instances[sample.split].update(ids)
        images_per_class[sample.split].update(set(ids))
    order = {n: i for i, n in enumerate(classes)}

    def by_class(counter, named):
        items = [(name(k) if named else k, v) for k, v in counter.items()]
        return dict(sorted(items, key=lambda item: order.get(item[0], len(order))))

    stats = {"images": images}
    if not classify:
        stats["instances"] = {split: by_class(instances[split], True) for split in SPLITS}
        stats["background"] = background
        stats["images_per_class"] = {split: by_class(images_per_class[split], True) for split in SPLITS}
    else:
        stats["images_per_class"] = {split: by_class(images_per_class[split], False) for split in SPLITS}
    stats["image_size"] = size_stats([(s.width, s.height) for s in samples])
    return stats
