"""A seeded train/val split, stratified by class.

Each image falls in one stratum (its class for classification; for detection
its rarest class, so rare classes reach val; "background" for images without
objects). Every stratum gives val its share of images by the largest-remainder
method, so the total is round(n * val_ratio). The result depends only on the
paths, the classes, the ratio and the seed (random.Random seeded with a string
is stable across processes and Python runs), and it is stored at ingest anyway.
"""

import math
import random
from collections import Counter, defaultdict

BACKGROUND = "\x00background"


def stratum_keys(samples, classes, *, classify):
    """The stratum of each sample, by path."""
    if classify:
        return {s.path: s.class_name for s in samples}
    frequency = Counter(class_id for s in samples for class_id, _ in (s.rows or ()))
    keys = {}
    for sample in samples:
        present = {class_id for class_id, _ in (sample.rows or ())}
        if not present:
            keys[sample.path] = BACKGROUND
        else:
            rarest = min(present, key=lambda c: (frequency[c], c))
            keys[sample.path] = classes[rarest] if rarest < len(classes) else str(rarest)
    return keys


def stratified_split(samples, keys, *, val_ratio, seed, both_splits_per_stratum=False):
    """Set `split` on every sample; returns the number sent to val."""
    strata = defaultdict(list)
    for sample in samples:
        strata[keys[sample.path]].append(sample)
    total = len(samples)
    if total < 2:
        for sample in samples:
            sample.split = "train"
        return 0
    target = min(max(round(total * val_ratio), 1), total - 1)
    quota = {}
    for key, members in strata.items():
        share = len(members) * val_ratio
        base = math.floor(share)
        if both_splits_per_stratum and len(members) >= 2:
            base = min(max(base, 1), len(members) - 1)
        quota[key] = base
    remaining = target - sum(quota.values())
    ceiling = {k: len(m) - (1 if both_splits_per_stratum and len(m) >= 2 else 0) for k, m in strata.items()}
    order = sorted(strata, key=lambda k: (-(len(strata[k]) * val_ratio - math.floor(len(strata[k]) * val_ratio)), k))
    while remaining > 0:
        grown = False
        for key in order:
            if remaining and quota[key] < ceiling[key]:
                quota[key] += 1
                remaining -= 1
                grown = True
        if not grown:
            break
    for key in sorted(strata):
        members = sorted(strata[key], key=lambda s: s.path)
        random.Random(f"{seed}:{key}").shuffle(members)
        for index, sample in enumerate(members):
            sample.split = "val" if index < quota[key] else "train"
    return sum(quota.values())
