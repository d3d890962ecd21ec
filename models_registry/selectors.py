"""Reads for the registry: owners see their versions; reviewers and staff see all."""

from models_registry.models import ModelVersion, RegisteredModel
from models_registry.services import APPROVE_PERMISSION


def model_version_list(*, user):
    queryset = ModelVersion.objects.select_related("registered_model", "created_by", "reviewer", "dataset")
    if user.is_staff or user.has_perm(APPROVE_PERMISSION):
        return queryset
    return queryset.filter(created_by=user)


def registered_model_list(*, user):
    queryset = RegisteredModel.objects.select_related("owner")
    if user.is_staff or user.has_perm(APPROVE_PERMISSION):
        return queryset
    return queryset.filter(owner=user)


# The metrics the dashboard shows for every version, in order: (key in ModelVersion.metrics, label).
KEY_METRICS = (("mAP50", "mAP50"), ("mAP50-95", "mAP50-95"), ("precision", "precision"), ("recall", "recall"))


def model_version_key_metrics(*, version):
    """The version's headline metrics as rows of {name, value} (value None where unknown)."""
    return [{"name": label, "value": _number(version.metrics.get(key))} for key, label in KEY_METRICS]


def model_version_per_class(*, version):
    """Per-class metrics of the newest validation of the version on its own data set (empty if none)."""
    from models_registry.evidence import version_validation

    validation = version_validation(version)
    if validation is None:
        return []
    rows = []
    for row in validation.per_class:
        if not isinstance(row, dict) or row.get("class") in (None, "all"):
            continue
        rows.append(
            {
                "name": row["class"],
                "images": row.get("images"),
                "instances": row.get("instances"),
                "metrics": [{"name": label, "value": _number(row.get(key))} for key, label in KEY_METRICS],
            }
        )
    return rows


def model_version_comparison(*, a, b):
    """Two versions side by side: each key metric and each class's metrics, with the difference B - A."""

    def compared(name, value_a, value_b):
        delta = None if value_a is None or value_b is None else round(value_b - value_a, 5)
        return {"name": name, "a": value_a, "b": value_b, "delta": delta}

    metrics = [compared(label, _number(a.metrics.get(key)), _number(b.metrics.get(key))) for key, label in KEY_METRICS]
    per_class_a = {row["name"]: row for row in model_version_per_class(version=a)}
    per_class_b = {row["name"]: row for row in model_version_per_class(version=b)}
    names = [name for name in a.registered_model.classes or [] if name in per_class_a or name in per_class_b]
    names += sorted((per_class_a.keys() | per_class_b.keys()) - set(names))
    per_class = []
    for name in names:
        values_a = {m["name"]: m["value"] for m in per_class_a.get(name, {}).get("metrics", [])}
        values_b = {m["name"]: m["value"] for m in per_class_b.get(name, {}).get("metrics", [])}
        per_class.append(
            {
                "name": name,
                "metrics": [compared(label, values_a.get(label), values_b.get(label)) for _, label in KEY_METRICS],
            }
        )
    return {"a": a, "b": b, "metrics": metrics, "per_class": per_class}


def _number(value):
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
