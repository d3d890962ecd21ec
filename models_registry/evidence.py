"""Everything a reviewer needs to judge a version, read in one place (admin and API)."""

from jobs.choices import EventKind, JobStatus
from jobs.models import JobEvent, ValidationResult
from jobs.selectors import job_log_tail
from models_registry.choices import ReviewStatus

CURVE_SERIES = (
    ("train/box_loss", "#e6194b"),
    ("train/cls_loss", "#f58231"),
    ("val/box_loss", "#911eb4"),
    ("mAP50", "#3cb44b"),
    ("mAP50-95", "#4363d8"),
)


def version_validation(version):
    """The newest completed validation of this version on its own data set, if any."""
    return (
        ValidationResult.objects.filter(model_version=version, dataset=version.dataset, job__status=JobStatus.COMPLETED)
        .order_by("-created_at")
        .first()
    )


def current_approved(version):
    """The approved version of the same registered model a new approval would compete with."""
    return (
        version.registered_model.versions.filter(review_status=ReviewStatus.APPROVED)
        .exclude(pk=version.pk)
        .order_by("-reviewed_at", "-number")
        .first()
    )


def _per_class_map50(result):
    if result is None:
        return {}
    return {
        row["class"]: row.get("mAP50")
        for row in result.per_class
        if isinstance(row, dict) and row.get("class") not in (None, "all")
    }


def per_class_deltas(version, baseline):
    """Per-class mAP50 of `version` against `baseline` (None where either is unknown)."""
    mine = _per_class_map50(version_validation(version))
    theirs = _per_class_map50(version_validation(baseline)) if baseline else {}
    rows = []
    for name in version.registered_model.classes or sorted(mine):
        now, before = mine.get(name), theirs.get(name)
        delta = None if now is None or before is None else round(now - before, 5)
        rows.append({"class": name, "mAP50": now, "baseline_mAP50": before, "delta": delta})
    return rows


def policy_violations(version):
    """Why the registered model's promotion policy blocks approving this version (empty: allowed)."""
    model = version.registered_model
    reasons = []
    if model.min_map50 is not None:
        value = version.metrics.get("mAP50")
        if value is None or value < model.min_map50:
            reasons.append(f"mAP50 {value if value is not None else 'unknown'} is below the minimum {model.min_map50}")
    if model.max_class_regression is not None:
        baseline = current_approved(version)
        if baseline is not None:
            for row in per_class_deltas(version, baseline):
                if row["delta"] is not None and row["delta"] < -model.max_class_regression:
                    reasons.append(
                        f"class {row['class']!r} regresses by {-row['delta']:.3f} mAP50 against v{baseline.number} "
                        f"(allowed {model.max_class_regression})"
                    )
                elif row["mAP50"] is None and row["baseline_mAP50"] is not None:
                    reasons.append(
                        f"class {row['class']!r} has no validation result to compare with v{baseline.number}"
                    )
    return reasons


def training_history(version):
    """Per-epoch metrics of the training run (a resumed epoch replaces the one it repeats)."""
    if version.training_job_id is None:
        return []
    history = {}
    for payload in JobEvent.objects.filter(job_id=version.training_job_id, kind=EventKind.EPOCH).values_list(
        "payload", flat=True
    ):
        history[payload["epoch"]] = payload.get("metrics", {})
    return [{"epoch": epoch, **metrics} for epoch, metrics in sorted(history.items())]


def curves_svg(history, *, width=640, height=220):
    """A small inline SVG of losses and mAP per epoch: each series scaled to its own range."""
    if len(history) < 2:
        return ""
    pad = 30
    epochs = [row["epoch"] for row in history]
    x_of = lambda e: pad + (e - epochs[0]) / max(epochs[-1] - epochs[0], 1) * (width - 2 * pad)  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="Training curves">',
        f'<rect width="{width}" height="{height}" fill="white" stroke="#ccc"/>',
    ]
    legend_x = pad
    for name, colour in CURVE_SERIES:
        values = [(row["epoch"], row[name]) for row in history if isinstance(row.get(name), int | float)]
        if len(values) < 2:
            continue
        low, high = min(v for _, v in values), max(v for _, v in values)
        span = (high - low) or 1.0
        points = " ".join(
            f"{x_of(e):.1f},{height - pad - (v - low) / span * (height - 2 * pad):.1f}" for e, v in values
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{legend_x}" y="14" font-size="11" fill="{colour}">{name} ({values[-1][1]:.3g})</text>')
        legend_x += 120
    parts.append(f'<text x="{pad}" y="{height - 8}" font-size="11">epoch {epochs[0]}</text>')
    parts.append(f'<text x="{width - pad - 50}" y="{height - 8}" font-size="11">epoch {epochs[-1]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def review_evidence(version):
    """The one-screen evidence for a reviewer."""
    validation = version_validation(version)
    baseline = current_approved(version)
    history = training_history(version)
    job = version.training_job
    per_class = [
        {
            "name": row.get("class"),
            "images": row.get("images"),
            "instances": row.get("instances"),
            "precision": row.get("precision"),
            "recall": row.get("recall"),
            "map50": row.get("mAP50"),
            "map50_95": row.get("mAP50-95"),
        }
        for row in (validation.per_class if validation else [])
        if isinstance(row, dict)
    ]
    return {
        "version": version,
        "validation": validation,
        "per_class": per_class,
        "baseline": baseline,
        "deltas": per_class_deltas(version, baseline) if baseline else [],
        "violations": policy_violations(version),
        "history": history,
        "curves_svg": curves_svg(history),
        "dataset": version.dataset,
        "dataset_errors": (version.dataset.errors or [])[:50],
        "log_tail": job_log_tail(job=job, lines=80) if job else [],
        "training_job": job,
    }
