"""Export a checkpoint to ONNX or TorchScript and report to the portal.

Run as ``python -m trainers.ultralytics.export`` with JOB_ID, CALLBACK_URL,
CALLBACK_TOKEN, FENCING_TOKEN, CHECKPOINT_PATH, FORMAT (onnx | torchscript),
IMGSZ, DEVICE and OUTPUT_PATH. The exported file is written to OUTPUT_PATH as
``model.<onnx|torchscript>``. Exit codes: 0 exported, 1 failed (reported),
2 bad configuration.
"""

import logging
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "true")

from trainers.config import CallbackConfig, ConfigError  # noqa: E402
from trainers.reporting import PortalReporter, run_reported  # noqa: E402

logger = logging.getLogger("trainers.ultralytics.export")
FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript"}


def export(checkpoint, fmt, output, *, imgsz=640, device=""):
    """Export `checkpoint` to `fmt`; returns the path of ``model<suffix>`` in `output`."""
    from ultralytics import YOLO

    output.mkdir(parents=True, exist_ok=True)
    local = output / "model.pt"
    shutil.copyfile(checkpoint, local)  # Ultralytics writes the export beside the weights
    produced = YOLO(str(local)).export(format=fmt, imgsz=imgsz, device=device or None, simplify=False)
    target = output / f"model{FORMATS[fmt]}"
    if Path(produced) != target:
        shutil.move(produced, target)
    return target


def main(env=None):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = os.environ if env is None else env
    try:
        callback = CallbackConfig.from_env(env)
        fmt = env.get("FORMAT", "")
        if fmt not in FORMATS:
            raise ConfigError(f"FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
        checkpoint = env["CHECKPOINT_PATH"]
        output = Path(env["OUTPUT_PATH"])
        imgsz = int(env.get("IMGSZ") or 640)
    except (ConfigError, KeyError, ValueError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("YOLO_CONFIG_DIR", str(output / ".ultralytics"))
    reporter = PortalReporter(callback.callback_url, callback.callback_token, callback.fencing_token)

    def work():
        reporter.send("started", device=env.get("DEVICE", "") or "auto")
        path = export(checkpoint, fmt, output, imgsz=imgsz, device=env.get("DEVICE", ""))
        logger.info("exported %s", path)

    return run_reported(reporter, work)


if __name__ == "__main__":
    sys.exit(main())
