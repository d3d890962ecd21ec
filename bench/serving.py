"""What the portal adds to inference: predict through an endpoint vs. in-process, jobs vs. batched predict.

Starts a portal (daphne + a Celery worker, embedded defaults), trains a small model through the API,
approves and deploys it, then with the same checkpoint and the same images:

* latency: `POST /api/v1/endpoints/<slug>/predict/` (one request at a time, kept-alive) against
  `model.predict(image)` called in this process, both after warm-up; p50 and p99 of each and the
  added milliseconds;
* throughput: an inference job of `--job-images` images (its `images_per_second`, measured by the
  predict CLI, and the wall time from the request to `completed`) against Ultralytics' own batched
  `model.predict` on the same images with the same batch size (decoding included in both).

    .venv/bin/python bench/serving.py [--requests 200] [--job-images 128] [--batch 16] [--imgsz 64]

Goals (issue 6): added p50 <= 10 ms (aim 5), added p99 <= 20 ms; job throughput >= 0.9x bare.
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import datagen  # noqa: E402
from tests.e2e.stack import running_stack  # noqa: E402


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def wait(fetch, done, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if done(value):
            return value
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}: {value}")


def trained_deployment(stack, imgsz):
    api = f"{stack.url}/api/v1"
    token = requests.post(f"{api}/auth/token/", json={"username": "owner", "password": "owner-pw-123"}).json()
    auth = {"Authorization": f"Token {token['token']}"}
    reviewer = requests.post(f"{api}/auth/token/", json={"username": "reviewer", "password": "reviewer-pw-123"})
    review = {"Authorization": f"Token {reviewer.json()['token']}"}
    archive = datagen.detection_zip(train=16, val=4, size=imgsz, seed=3)
    response = requests.post(
        f"{api}/datasets/", headers=auth, data={"name": "bench"}, files={"file": ("b.zip", archive)}
    )
    response.raise_for_status()
    dataset_id = response.json()["id"]
    wait(
        lambda: requests.get(f"{api}/datasets/{dataset_id}/", headers=auth).json(),
        lambda d: d["status"] == "ready",
        180,
        "data set",
    )
    config = {
        "dataset": dataset_id,
        "epochs": 1,
        "imgsz": imgsz,
        "batch": 8,
        "workers": 0,
        "device": "cpu",
        "registered_model": "bench",
        "validate_after": False,
    }
    job = requests.post(f"{api}/training-jobs/", headers=auth, json=config).json()
    job = wait(
        lambda: requests.get(f"{api}/training-jobs/{job['id']}/", headers=auth).json(),
        lambda j: j["status"] in {"completed", "failed"},
        900,
        "training",
    )
    version_id = job["model_version"]
    requests.post(f"{api}/model-versions/{version_id}/approve/", headers=review, json={}).raise_for_status()
    deployment = requests.post(f"{api}/deployments/", headers=auth, json={"model_version": version_id}).json()
    wait(
        lambda: requests.get(f"{api}/deployments/{deployment['id']}/", headers=auth).json(),
        lambda d: d["status"] == "active",
        300,
        "deployment",
    )
    weights = requests.get(f"{api}/model-versions/{version_id}/download/", headers=auth).content
    return api, auth, version_id, deployment["endpoint"], weights


@contextmanager
def model_server(checkpoint, max_batch, workdir):
    """The model server CLI on the checkpoint, with micro-batching up to `max_batch` images."""
    import hashlib
    import json
    import subprocess

    ready = workdir / f"ready-{max_batch}.json"
    env = {
        **os.environ,
        "WEIGHTS": str(checkpoint),
        "EXPECTED_SHA256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
        "PORT": "0",
        "READY_FILE": str(ready),
        "DEVICE": "cpu",
        "MAX_BATCH": str(max_batch),
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen([sys.executable, "-m", "trainers.ultralytics.serve"], env=env, cwd=workdir)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the model server did not start")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def concurrent_rate(url, images, clients, per_client):
    """Images per second with `clients` threads each sending `per_client` requests one after another."""
    from concurrent.futures import ThreadPoolExecutor

    def client(offset):
        session = requests.Session()
        for i in range(per_client):
            session.post(f"{url}/predict", data=images[(offset + i) % len(images)]).raise_for_status()

    with ThreadPoolExecutor(clients) as pool:  # warm-up round
        list(pool.map(client, range(clients)))
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return clients * per_client / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--job-images", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--imgsz", type=int, default=64, help="training size, and the size of the images")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for the micro-batching run")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "true")
    images = [datagen.sample_image_bytes(size=args.imgsz, seed=i) for i in range(args.job_images)]
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, running_stack(Path(tmp)) as stack:
        os.environ["YOLO_CONFIG_DIR"] = str(Path(tmp) / ".ultralytics")
        api, auth, version_id, slug, weights = trained_deployment(stack, args.imgsz)
        checkpoint = Path(tmp) / "model.pt"
        checkpoint.write_bytes(weights)
        from PIL import Image
        from ultralytics import YOLO

        model = YOLO(str(checkpoint))
        session = requests.Session()
        url = f"{api}/endpoints/{slug}/predict/"

        def portal_once(data):
            started = time.perf_counter()
            response = session.post(url, headers=auth, files={"image": ("i.jpg", data, "image/jpeg")})
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        # The model server alone (what the portal forwards to), to split the added time in two.
        lookup = f"Endpoint.objects.get(slug='{slug}').current_deployment.server_url"
        printed = stack.manage("shell", "-c", f"from serving.models import Endpoint; print({lookup})").stdout
        server_url = printed.strip().splitlines()[-1]
        direct = requests.Session()

        def server_once(data):
            started = time.perf_counter()
            response = direct.post(f"{server_url}/predict", data=data)
            response.raise_for_status()
            return (time.perf_counter() - started) * 1000

        def bare_once(data):
            started = time.perf_counter()
            with Image.open(io.BytesIO(data)) as image:
                model.predict(image.convert("RGB"), verbose=False)
            return (time.perf_counter() - started) * 1000

        for data in images[:10]:  # warm every path
            portal_once(data)
            server_once(data)
            bare_once(data)
        portal_ms, server_ms, bare_ms = [], [], []
        for i in range(args.requests):  # interleaved, so load on the machine hits all alike
            data = images[i % len(images)]
            portal_ms.append(portal_once(data))
            server_ms.append(server_once(data))
            bare_ms.append(bare_once(data))

        started = time.perf_counter()
        job = requests.post(
            f"{api}/inference-jobs/",
            headers=auth,
            data={"model_version": version_id, "batch": args.batch, "device": "cpu"},
            files=[("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(images)],
        ).json()
        job = wait(
            lambda: requests.get(f"{api}/inference-jobs/{job['id']}/", headers=auth).json(),
            lambda j: j["status"] in {"completed", "failed"},
            900,
            "inference job",
        )
        job_wall = time.perf_counter() - started
        if job["status"] != "completed":
            raise RuntimeError(f"inference job failed: {job['error']}")
        job_rate = job["metrics"]["images_per_second"]

        def decoded(chunk):  # the job decodes each file too, so the bare run does it inside the clock
            return [Image.open(io.BytesIO(data)).convert("RGB") for data in chunk]

        model.predict(decoded(images[: args.batch]), verbose=False)
        started = time.perf_counter()
        for start in range(0, len(images), args.batch):
            model.predict(decoded(images[start : start + args.batch]), verbose=False)
        bare_rate = len(images) / (time.perf_counter() - started)

        rates = {}
        for max_batch in (1, 8):  # the same server, batching off and on, under the same concurrent load
            with model_server(checkpoint, max_batch, Path(tmp)) as server:
                rates[max_batch] = concurrent_rate(server, images, args.clients, 25)

    p50p, p99p = statistics.median(portal_ms), percentile(portal_ms, 0.99)
    p50b, p99b = statistics.median(bare_ms), percentile(bare_ms, 0.99)
    p50s, p99s = statistics.median(server_ms), percentile(server_ms, 0.99)
    print(f"\npredict, {args.requests} requests of {args.imgsz}x{args.imgsz} JPEGs, CPU, one at a time:")
    print(f"  in-process model.predict  p50 {p50b:7.2f} ms  p99 {p99b:7.2f} ms")
    print(f"  model server, direct      p50 {p50s:7.2f} ms  p99 {p99s:7.2f} ms")
    print(f"  portal endpoint           p50 {p50p:7.2f} ms  p99 {p99p:7.2f} ms")
    print(
        f"  added                     p50 {p50p - p50b:+7.2f} ms  p99 {p99p - p99b:+7.2f} ms  "
        f"(ratio p50 {p50p / p50b:.2f}x)"
    )
    print(f"inference job, {len(images)} images, batch {args.batch}:")
    print(f"  Ultralytics batched predict   {bare_rate:8.1f} images/s")
    print(f"  inference job (CLI measured)  {job_rate:8.1f} images/s  ratio {job_rate / bare_rate:.2f}x")
    print(
        f"  inference job (request to completed, queueing and storage included) "
        f"{len(images) / job_wall:8.1f} images/s  ratio {len(images) / job_wall / bare_rate:.2f}x"
    )
    print(f"model server under {args.clients} concurrent clients (micro-batching):")
    print(f"  one image per model call   {rates[1]:8.1f} images/s")
    print(f"  batches of up to 8         {rates[8]:8.1f} images/s  ratio {rates[8] / rates[1]:.2f}x")
    print(
        f"goals: added p50 <= 10 ms: {'met' if p50p - p50b <= 10 else 'NOT met'}; added p99 <= 20 ms: "
        f"{'met' if p99p - p99b <= 20 else 'NOT met'}; "
        f"job >= 0.9x: {'met' if job_rate >= 0.9 * bare_rate else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
