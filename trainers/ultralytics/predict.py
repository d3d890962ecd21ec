"""Predict on a folder of images in batches and report per-image results to the portal.

Run as ``python -m trainers.ultralytics.predict`` with JOB_ID, CALLBACK_URL,
CALLBACK_TOKEN, FENCING_TOKEN, CHECKPOINT_PATH, INPUT_DIR (images named by
their index, e.g. ``000003.jpg``), and optionally DEVICE, IMGSZ (blank: the
size the checkpoint was trained at), BATCH_SIZE,
CONFIDENCE_THRESHOLD, IOU_THRESHOLD, MAX_DET, CLASSES (``0,2``) and
REPORT_EVERY and REPORT_SECONDS (a ``predictions`` callback goes out when this
many results wait, or this long after the last one: default 256 and 1 s, so
progress is live without a callback per batch competing with the model for the
CPU). An image that cannot be
read gets a result with an ``error`` instead of failing the job.
Exit codes: 0 done, 1 failed (reported), 2 bad configuration.
"""

import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "true")

from trainers.config import CallbackConfig, ConfigError, _float, _int  # noqa: E402
from trainers.reporting import PortalReporter, run_reported  # noqa: E402

logger = logging.getLogger("trainers.ultralytics.predict")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def predictions_of(result, names):
    """Boxes of one Ultralytics result as JSON-ready dicts (pixel xyxy)."""
    predictions = []
    boxes = result.boxes
    if boxes is None:
        return predictions
    for xyxy, score, cls in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist(), strict=True):
        class_id = int(cls)
        predictions.append(
            {
                "class_id": class_id,
                "class_name": str(names.get(class_id, class_id)),
                "confidence": round(float(score), 5),
                "bbox": [round(float(v), 2) for v in xyxy],
            }
        )
    return predictions


def input_images(folder):
    """(index, path) of the images in `folder`, in index order."""
    found = []
    for path in Path(folder).iterdir():
        if path.suffix.lower() in IMAGE_SUFFIXES and path.stem.isdigit():
            found.append((int(path.stem), path))
    return sorted(found)


def predict_batches(model, images, *, batch_size, options):
    """Yield lists of per-image result dicts, one list per batch."""
    from PIL import Image

    for start in range(0, len(images), batch_size):
        batch, results = [], []
        for index, path in images[start : start + batch_size]:
            try:
                with Image.open(path) as image:
                    batch.append((index, image.convert("RGB")))
            except OSError as exc:
                results.append({"index": index, "predictions": [], "error": f"unreadable image: {exc}"})
        if batch:
            started = time.perf_counter()
            predicted = model.predict([image for _, image in batch], verbose=False, **options)
            per_image_ms = (time.perf_counter() - started) * 1000 / len(batch)
            for (index, image), result in zip(batch, predicted, strict=True):
                results.append(
                    {
                        "index": index,
                        "width": image.width,
                        "height": image.height,
                        "predictions": predictions_of(result, model.names),
                        "inference_time_ms": round(per_image_ms, 3),
                    }
                )
        yield sorted(results, key=lambda r: r["index"])


def warm_up(model, options):
    """One prediction on a blank image: Ultralytics sets its predictor up lazily, seconds on a CPU."""
    from PIL import Image

    model.predict(Image.new("RGB", (64, 64)), verbose=False, **options)


def main(env=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = os.environ if env is None else env
    try:
        callback = CallbackConfig.from_env(env)
        checkpoint = env["CHECKPOINT_PATH"]
        images = input_images(env["INPUT_DIR"])
        batch_size = max(1, _int(env, "BATCH_SIZE", 16))
        report_every = max(1, _int(env, "REPORT_EVERY", 256))
        report_seconds = max(0.0, _float(env, "REPORT_SECONDS", 1.0))
        classes = [int(c) for c in env.get("CLASSES", "").split(",") if c.strip()] or None
        options = {
            "imgsz": _int(env, "IMGSZ", 0) or None,  # none: the size the checkpoint was trained at
            "conf": _float(env, "CONFIDENCE_THRESHOLD", 0.25),
            "iou": _float(env, "IOU_THRESHOLD", 0.7),
            "max_det": _int(env, "MAX_DET", 300),
            "classes": classes,
            "device": env.get("DEVICE", "") or None,
        }
        options = {key: value for key, value in options.items() if value is not None}  # Ultralytics' defaults
    except (ConfigError, KeyError, ValueError, OSError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    reporter = PortalReporter(callback.callback_url, callback.callback_token, callback.fencing_token)

    def work():
        from ultralytics import YOLO

        model = YOLO(checkpoint)
        warm_up(model, options)
        reporter.send("started", device=env.get("DEVICE", "") or "auto")
        started = last_report = time.perf_counter()
        pending = []
        for results in predict_batches(model, images, batch_size=batch_size, options=options):
            pending.extend(results)
            if len(pending) >= report_every or time.perf_counter() - last_report >= report_seconds:
                reporter.post("predictions", results=pending)
                pending, last_report = [], time.perf_counter()
        if pending:
            reporter.post("predictions", results=pending)
        reporter.flush()
        seconds = time.perf_counter() - started
        reporter.send("done", metrics={"images_per_second": len(images) / seconds if seconds else 0.0})
        logger.info("predicted %d images in %.2fs", len(images), seconds)

    return run_reported(reporter, work)


if __name__ == "__main__":
    sys.exit(main())
