"""Evaluate a checkpoint on a data set split and report the results to the portal.

Run as ``python -m trainers.ultralytics.evaluate`` with the configuration in
environment variables (see :class:`trainers.config.EvaluateConfig`). Reports one
``results`` callback: overall metrics, per-class precision / recall / AP, the
confusion matrix (data) and PR curves; draws the confusion matrix as
``confusion_matrix.png`` in OUTPUT_PATH for the launcher to store.
Exit codes: 0 evaluated, 1 failed (reported), 2 bad configuration.
"""

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "true")

from trainers.config import ConfigError, EvaluateConfig  # noqa: E402
from trainers.reporting import PortalReporter, run_reported  # noqa: E402
from trainers.ultralytics.train import normalise_metrics  # noqa: E402

logger = logging.getLogger("trainers.ultralytics.evaluate")
CURVE_POINTS = 101


def _rounded(values):
    return [round(float(v), 5) for v in values]


def per_class_rows(metrics):
    """Per-class rows from Ultralytics' summary, with the portal's key names."""
    rows = []
    summary = getattr(metrics, "summary", None)
    if summary is None:
        return rows
    rename = {
        "Class": "class",
        "Images": "images",
        "Instances": "instances",
        "Box-P": "precision",
        "Box-R": "recall",
        "Box-F1": "f1",
        "mAP50": "mAP50",
        "mAP75": "mAP75",
        "mAP50-95": "mAP50-95",
    }
    for row in summary():
        clean = {}
        for key, value in row.items():
            name = rename.get(key, key)
            clean[name] = value if isinstance(value, str) else round(float(value), 5)
        rows.append(clean)
    return rows


def pr_curves(metrics, names):
    """Precision-recall curves per class at IoU 0.5, down-sampled to CURVE_POINTS points."""
    curves = getattr(metrics, "curves_results", None)
    if not curves:
        return {}
    recall, precision = curves[0][0], curves[0][1]
    step = max(len(recall) // (CURVE_POINTS - 1), 1)
    indexes = list(range(0, len(recall), step))[:CURVE_POINTS]
    class_index = list(getattr(getattr(metrics, "box", None), "ap_class_index", range(len(precision))))
    return {
        "recall": _rounded(recall[i] for i in indexes),
        "precision": {
            str(names.get(int(c), c)): _rounded(precision[row][i] for i in indexes)
            for row, c in enumerate(class_index)
            if row < len(precision)
        },
    }


def confusion(metrics, names):
    matrix = getattr(metrics, "confusion_matrix", None)
    if matrix is None:
        return {}
    labels = [str(names[i]) for i in sorted(names)]
    data = matrix.matrix.tolist()
    if len(data) == len(labels) + 1:
        labels.append("background")
    # Ultralytics' rows are predictions and columns the true classes.
    return {"labels": labels, "matrix": [[int(v) for v in row] for row in data], "rows": "predicted", "columns": "true"}


def draw_confusion_matrix(matrix, path):
    """Render the confusion matrix (counts) as a PNG with matplotlib's bundled font."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, data = matrix["labels"], matrix["matrix"]
    size = max(4, 0.6 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(data, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("True")
    axes.set_ylabel("Predicted")
    peak = max((max(row) for row in data), default=0)
    for i, row in enumerate(data):
        for j, value in enumerate(row):
            colour = "white" if peak and value > peak / 2 else "black"
            axes.text(j, i, str(value), ha="center", va="center", color=colour)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _skip_batch_mosaics(validator):
    validator.plot_val_samples = lambda *args, **kwargs: None
    validator.plot_predictions = lambda *args, **kwargs: None


GALLERY_SIZE = 8
PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
]


def class_colour(class_id):
    return PALETTE[class_id % len(PALETTE)]


def _ground_truth(label_path, width, height):
    """Boxes in pixels from a YOLO label file (a polygon's bounding box for segmentation)."""
    boxes = []
    if not label_path.is_file():
        return boxes
    for line in label_path.read_text(errors="replace").splitlines():
        parts = line.split()
        try:
            class_id, values = int(parts[0]), [float(v) for v in parts[1:]]
        except (ValueError, IndexError):
            continue
        if len(values) == 4:
            cx, cy, w, h = values
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        elif len(values) >= 6:
            xs, ys = values[0::2], values[1::2]
            x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
        else:
            continue
        boxes.append((class_id, [x1 * width, y1 * height, x2 * width, y2 * height], None))
    return boxes


def _draw(image, boxes, names, title):
    from PIL import ImageDraw, ImageFont

    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for class_id, (x1, y1, x2, y2), confidence in boxes:
        colour = class_colour(class_id)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=max(1, round(min(canvas.size) / 150)))
        label = str(names.get(class_id, class_id)) + ("" if confidence is None else f" {confidence:.2f}")
        draw.text((x1 + 2, max(0, y1 - 11)), label, fill=colour, font=font)
    draw.text((3, 3), title, fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
    return canvas


def draw_gallery(model, data_yaml, split, names, output, *, conf, count=GALLERY_SIZE):
    """Ground truth next to predictions for the first `count` images of a split; returns the files."""
    import yaml
    from PIL import Image

    document = yaml.safe_load(Path(data_yaml).read_text())
    root = Path(document["path"])
    image_dir = root / document[split]
    images = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".webp"})
    folder = output / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, path in enumerate(images[:count]):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        label = root / "labels" / path.relative_to(root / "images").with_suffix(".txt")
        truth = _ground_truth(label, *image.size)
        result = model.predict(image, conf=max(conf, 0.25), verbose=False)[0]
        predicted = []
        if result.boxes is not None:
            for xyxy, score, cls in zip(
                result.boxes.xyxy.tolist(), result.boxes.conf.tolist(), result.boxes.cls.tolist(), strict=True
            ):
                predicted.append((int(cls), xyxy, float(score)))
        pair = Image.new("RGB", (image.width * 2 + 4, image.height), (255, 255, 255))
        pair.paste(_draw(image, truth, names, "truth"), (0, 0))
        pair.paste(_draw(image, predicted, names, "predicted"), (image.width + 4, 0))
        target = folder / f"{index:02d}-{path.stem}.jpg"
        pair.save(target, quality=90)
        written.append(target)
    return written


def evaluate(config, reporter):
    from ultralytics import YOLO

    model = YOLO(config.checkpoint_path, task=config.task)
    # The confusion matrix is only filled with plots on; the batch mosaics that
    # plots also draws would fetch a font from the internet, so they are skipped.
    model.add_callback("on_val_start", _skip_batch_mosaics)
    output = Path(config.output_path)
    output.mkdir(parents=True, exist_ok=True)
    reporter.send("started", device=config.device or "auto")
    metrics = model.val(
        data=config.data_yaml,
        split=config.split,
        conf=config.conf,
        iou=config.iou,
        imgsz=config.imgsz,
        batch=config.batch,
        device=config.device or None,
        plots=True,
        save_dir=str(output / "val"),
        verbose=False,
        workers=0,
    )
    names = model.names
    matrix = confusion(metrics, names)
    if matrix:
        draw_confusion_matrix(matrix, output / "confusion_matrix.png")
    if config.task in {"detect", "segment"}:
        draw_gallery(model, config.data_yaml, config.split, names, output, conf=config.conf)
    reporter.send(
        "results",
        metrics=normalise_metrics(metrics.results_dict),
        per_class=per_class_rows(metrics),
        confusion_matrix=matrix,
        curves={"pr": pr_curves(metrics, names)},
        speed_ms={k: float(v) for k, v in (getattr(metrics, "speed", {}) or {}).items()},
    )


def main(env=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = EvaluateConfig.from_env(env)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(config.output_path) / ".ultralytics"))
    reporter = PortalReporter(config.callback_url, config.callback_token, config.fencing_token)
    return run_reported(reporter, lambda: evaluate(config, reporter))


if __name__ == "__main__":
    sys.exit(main())
