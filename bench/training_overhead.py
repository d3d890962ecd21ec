"""What the portal adds to a training run: bare Ultralytics vs. API → Celery → trainer.

The same small training (same data, configuration, seed and device) runs bare
with Ultralytics in a fresh Python process, and through a running portal
(daphne + a Celery worker, started here on the embedded defaults or on
PostgreSQL + Redis with --production), interleaved over several pairs. Prints
the median wall time of each, their ratio, the fixed cost, and the median
per-epoch time ratio.

    .venv/bin/python bench/training_overhead.py [--pairs 3] [--epochs 5] [--production]

Goal (issue 4): end to end at most 1.05x plus at most 3 s; per epoch at most 1.02x.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import datagen  # noqa: E402
from tests.e2e.stack import postgres_database, redis_server, running_stack  # noqa: E402

BARE = """
import json, os, sys, time
os.environ["YOLO_OFFLINE"] = "true"
from ultralytics import YOLO
starts, seconds = [], []
model = YOLO("yolo11n.yaml")
model.add_callback("on_train_epoch_start", lambda trainer: starts.append(time.monotonic()))
model.add_callback("on_fit_epoch_end", lambda trainer: seconds.append(time.monotonic() - starts[-1]))
cfg = json.loads(sys.argv[1])
model.train(**cfg)
print("EPOCH_SECONDS " + json.dumps(seconds[: cfg["epochs"]]))
"""


def run_bare(data_yaml, config, workdir):
    args = {
        "data": str(data_yaml),
        "epochs": config["epochs"],
        "imgsz": config["imgsz"],
        "batch": config["batch"],
        "workers": config["workers"],
        "device": config["device"],
        "seed": 0,
        "deterministic": True,
        "plots": False,
        "amp": False,
        "verbose": False,
        "save_dir": str(workdir),
    }
    env = {**os.environ, "YOLO_CONFIG_DIR": str(workdir / ".ultralytics"), "MPLCONFIGDIR": str(workdir / ".mpl")}
    started = time.time()
    output = subprocess.run(
        [sys.executable, "-c", BARE, json.dumps(args)], capture_output=True, text=True, env=env, check=True
    ).stdout
    wall = time.time() - started
    return wall, json.loads(output.rsplit("EPOCH_SECONDS ", 1)[1])


def run_portal(api, auth, dataset_id, config):
    started = time.time()
    response = requests.post(f"{api}/training-jobs/", headers=auth, json={"dataset": dataset_id, **config})
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job = requests.get(f"{api}/training-jobs/{job_id}/", headers=auth).json()
        if job["status"] in {"completed", "failed", "cancelled"}:
            break
        time.sleep(0.1)
    wall = time.time() - started
    if job["status"] != "completed":
        raise RuntimeError(f"portal run failed: {job['error']}")
    events = requests.get(f"{api}/training-jobs/{job_id}/events/", headers=auth).json()["results"]
    return wall, [e["payload"]["epoch_seconds"] for e in events if e["kind"] == "epoch"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--imgsz", type=int, default=96)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--production", action="store_true", help="PostgreSQL + Redis instead of the embedded defaults")
    args = parser.parse_args()
    config = {
        "model": "yolo11n",
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": 8,
        "workers": 0,
        "device": args.device,
        "validate_after": False,
    }
    with ExitStack() as stack_context, tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        archive = datagen.detection_zip(train=args.images, val=max(args.images // 6, 4), size=args.imgsz, seed=1)
        database_url = redis_url = None
        if args.production:
            redis_url = stack_context.enter_context(redis_server()).url
            database_url = stack_context.enter_context(
                postgres_database(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
            )
        stack = stack_context.enter_context(
            running_stack(tmp / "portal", database_url=database_url, redis_url=redis_url)
        )
        api = f"{stack.url}/api/v1"
        token = requests.post(f"{api}/auth/token/", json={"username": "owner", "password": "owner-pw-123"}).json()
        auth = {"Authorization": f"Token {token['token']}"}
        response = requests.post(
            f"{api}/datasets/", headers=auth, data={"name": "bench"}, files={"file": ("bench.zip", archive)}
        )
        response.raise_for_status()
        dataset_id = response.json()["id"]
        while requests.get(f"{api}/datasets/{dataset_id}/", headers=auth).json()["status"] == "validating":
            time.sleep(0.2)
        dataset = requests.get(f"{api}/datasets/{dataset_id}/", headers=auth).json()

        # Warm both paths once (imports, caches) so the pairs compare steady states. The first
        # portal job builds the data set's layout in the worker's cache; the bare runs train on it.
        run_portal(api, auth, dataset_id, config)
        (data_root,) = (stack.var_dir / "cache" / "datasets").iterdir()
        data_yaml = tmp / "data.yaml"
        names = "".join(f"  {i}: {n}\n" for i, n in enumerate(dataset["classes"]))
        data_yaml.write_text(f"path: {data_root}\ntrain: images/train\nval: images/val\nnames:\n{names}")
        run_bare(data_yaml, config, tmp / "warm")
        bare_walls, portal_walls, bare_epochs, portal_epochs = [], [], [], []
        for pair in range(args.pairs):
            order = [("bare", None), ("portal", None)] if pair % 2 == 0 else [("portal", None), ("bare", None)]
            for which, _ in order:
                if which == "bare":
                    wall, epochs = run_bare(data_yaml, config, tmp / f"bare-{pair}")
                    bare_walls.append(wall)
                    bare_epochs += epochs
                else:
                    wall, epochs = run_portal(api, auth, dataset_id, config)
                    portal_walls.append(wall)
                    portal_epochs += epochs
            print(f"pair {pair + 1}: bare {bare_walls[-1]:.2f}s  portal {portal_walls[-1]:.2f}s", flush=True)

    bare, portal = statistics.median(bare_walls), statistics.median(portal_walls)
    bare_epoch, portal_epoch = statistics.median(bare_epochs), statistics.median(portal_epochs)
    mode = "PostgreSQL + Redis" if args.production else "embedded defaults"
    print(f"\nmode: {mode}; {args.pairs} pairs of {args.epochs} epochs, imgsz {args.imgsz}, device {args.device}")
    print(
        f"end to end  bare {bare:.2f}s  portal {portal:.2f}s  ratio {portal / bare:.3f}  "
        f"fixed cost {portal - bare:+.2f}s"
    )
    print(f"per epoch   bare {bare_epoch:.3f}s  portal {portal_epoch:.3f}s  ratio {portal_epoch / bare_epoch:.3f}")
    fixed_ok = portal <= 1.05 * bare + 3
    print(
        f"goal end to end <= 1.05x + 3 s: {'met' if fixed_ok else 'NOT met'}; "
        f"per epoch <= 1.02x: {'met' if portal_epoch <= 1.02 * bare_epoch else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
