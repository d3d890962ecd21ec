"""Serving on real processes: deploy, predict, switch under load, roll back, stop."""

import base64
import threading
import time

import pytest
import requests

from tests import datagen
from tests.e2e.stack import running_stack
from tests.e2e.test_pipeline import FeedRecorder, upload_dataset, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRAIN_CONFIG = {
    "model": "yolo11n",
    "epochs": 2,
    "imgsz": 64,
    "batch": 8,
    "workers": 0,
    "device": "cpu",
    "registered_model": "shapes",
    "validate_after": False,
}


class PredictStream(threading.Thread):
    """Sends predict requests to an endpoint one after another until told to stop (bounded)."""

    def __init__(self, url, headers, image, max_requests=2000, max_seconds=300):
        super().__init__(daemon=True)
        self.url, self.headers, self.image = url, headers, image
        self.max_requests, self.max_seconds = max_requests, max_seconds
        self.answers = []  # (status code, model version or error text)
        self.halt = threading.Event()

    def run(self):
        session = requests.Session()
        deadline = time.monotonic() + self.max_seconds
        while not self.halt.is_set() and len(self.answers) < self.max_requests and time.monotonic() < deadline:
            try:
                response = session.post(
                    self.url, headers=self.headers, files={"image": ("probe.jpg", self.image)}, timeout=60
                )
            except requests.RequestException as exc:
                self.answers.append((0, repr(exc)))
                continue
            body = response.json()
            self.answers.append((response.status_code, body.get("model_version") if response.ok else body.get("error")))

    def failures(self):
        return [answer for answer in self.answers if answer[0] != 200]

    def versions(self):
        return [version for code, version in self.answers if code == 200]


def train_version(api, auth, dataset_id, seed):
    response = requests.post(
        f"{api}/training-jobs/", headers=auth, json={"dataset": dataset_id, "seed": seed, **TRAIN_CONFIG}
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_for_job(api, auth, job_id):
    job = wait_for(
        lambda: requests.get(f"{api}/training-jobs/{job_id}/", headers=auth).json(),
        lambda j: j["status"] in {"completed", "failed", "cancelled"},
        900,
        f"training job {job_id}",
    )
    assert job["status"] == "completed", job
    return job["model_version"]


def wait_for_endpoint(api, auth, slug, deployment_id):
    endpoint = wait_for(
        lambda: requests.get(f"{api}/endpoints/{slug}/", headers=auth).json(),
        lambda e: (e.get("current_deployment") or {}).get("id") == deployment_id,
        240,
        f"endpoint {slug} to serve deployment {deployment_id}",
    )
    assert endpoint["current_deployment"]["status"] == "active", endpoint
    return endpoint


def run_serving(stack):
    api = f"{stack.url}/api/v1"
    token = requests.post(f"{api}/auth/token/", json={"username": "owner", "password": "owner-pw-123"}).json()["token"]
    auth = {"Authorization": f"Token {token}"}
    reviewer_token = requests.post(
        f"{api}/auth/token/", json={"username": "reviewer", "password": "reviewer-pw-123"}
    ).json()["token"]
    reviewer = {"Authorization": f"Token {reviewer_token}"}
    image = datagen.sample_image_bytes()

    # Two versions of one registered model, trained side by side and approved by the reviewer.
    dataset_id = upload_dataset(api, auth, datagen.detection_zip(train=16, val=4, size=64, seed=11))["id"]
    jobs = [train_version(api, auth, dataset_id, seed) for seed in (1, 2)]
    first, second = (wait_for_job(api, auth, job_id) for job_id in jobs)
    for version_id in (first, second):
        response = requests.post(f"{api}/model-versions/{version_id}/approve/", headers=reviewer, json={"note": "ok"})
        assert response.status_code == 200, response.text
    versions = {v["id"]: v for v in requests.get(f"{api}/model-versions/", headers=auth).json()["results"]}
    assert versions[first]["artifact_sha256"] != versions[second]["artifact_sha256"]

    # Deploy the first version; the registered model's endpoint serves it.
    response = requests.post(f"{api}/deployments/", headers=auth, json={"model_version": first})
    assert response.status_code == 202, response.text
    slug = response.json()["endpoint"]
    assert slug == "owner-shapes"
    wait_for_endpoint(api, auth, slug, response.json()["id"])
    predict_url = f"{api}/endpoints/{slug}/predict/"
    response = requests.post(
        predict_url,
        headers=auth,
        data={"conf": "0.0001", "max_det": "3", "annotated": "true"},
        files={"image": ("probe.jpg", image, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == first
    assert 0 < len(body["predictions"]) <= 3
    assert base64.b64decode(body["annotated_image"])[:2] == b"\xff\xd8"
    response = requests.post(predict_url, headers=auth, files={"image": ("x.jpg", b"<html>no</html>")})
    assert response.status_code == 400 and response.json()["error"]["code"] == "not_an_image"

    # Switch to the second version while a client keeps predicting: no request fails.
    stream = PredictStream(predict_url, auth, image)
    stream.start()
    wait_for(lambda: len(stream.answers), lambda n: n >= 5, 60, "the request stream to start")
    response = requests.post(f"{api}/endpoints/{slug}/switch/", headers=auth, json={"model_version": second})
    assert response.status_code == 202, response.text
    switched = response.json()["id"]
    wait_for_endpoint(api, auth, slug, switched)
    answered = len(stream.answers)
    wait_for(lambda: len(stream.answers), lambda n: n >= answered + 10, 60, "requests after the switch")

    # Roll back under the same stream: the first version serves again.
    response = requests.post(f"{api}/endpoints/{slug}/rollback/", headers=auth)
    assert response.status_code == 202, response.text
    assert response.json()["model_version"] == first
    wait_for_endpoint(api, auth, slug, response.json()["id"])
    answered = len(stream.answers)
    wait_for(lambda: len(stream.answers), lambda n: n >= answered + 10, 60, "requests after the rollback")
    stream.halt.set()
    stream.join(60)
    assert stream.failures() == [], stream.failures()[:5]
    served = stream.versions()
    assert first in served and second in served, "the stream must have seen both versions"
    assert served[-1] == first
    print(f"stream: {len(stream.answers)} requests through a switch and a rollback, none failed")

    # The replaced deployments stopped; usage counts the traffic.
    deployments = requests.get(f"{api}/deployments/", headers=auth).json()["results"]
    wait_for(
        lambda: sorted(d["status"] for d in requests.get(f"{api}/deployments/", headers=auth).json()["results"]),
        lambda statuses: statuses == ["active", "stopped", "stopped"],
        120,
        "the replaced model servers to stop",
    )
    current = requests.get(f"{api}/endpoints/{slug}/", headers=auth).json()["current_deployment"]["id"]
    usage = requests.get(f"{api}/endpoints/{slug}/usage/", headers=auth).json()
    assert usage["deployment"] == current and usage["request_count"] > 0
    assert usage["latency_ms"]["p50"] <= usage["latency_ms"]["p99"]
    assert len(deployments) == 3

    # Stop: the endpoint answers 503 with Retry-After.
    assert requests.post(f"{api}/endpoints/{slug}/stop/", headers=auth).status_code == 202
    wait_for(
        lambda: requests.get(f"{api}/endpoints/{slug}/", headers=auth).json()["status"],
        lambda s: s == "stopped",
        60,
        "the endpoint to stop",
    )
    response = requests.post(predict_url, headers=auth, files={"image": ("probe.jpg", image)})
    assert response.status_code == 503 and response.headers["Retry-After"]

    # Many images as an inference job on the gpu queue, followed live; results read back afterwards.
    files = [("images", (f"shot{i}.jpg", datagen.sample_image_bytes(size=64, seed=i), "image/jpeg")) for i in range(6)]
    response = requests.post(
        f"{api}/inference-jobs/",
        headers=auth,
        data={"model_version": first, "conf": "0.0001", "imgsz": "64", "batch": "4", "device": "cpu"},
        files=files,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    feed = FeedRecorder(f"ws://127.0.0.1:{stack.port}/ws/jobs/{job_id}/", token, stack.url)
    feed.start()
    assert feed.connected.wait(30) and feed.error is None, feed.error
    job = wait_for(
        lambda: requests.get(f"{api}/inference-jobs/{job_id}/", headers=auth).json(),
        lambda j: j["status"] in {"completed", "failed", "cancelled"},
        300,
        "the inference job",
    )
    assert job["status"] == "completed", job
    assert job["images"] == 6 and job["images_done"] == 6 and job["metrics"]["images_per_second"] > 0
    feed.join(30)
    kinds = [m.get("kind") for m in feed.messages]
    assert "predictions" in kinds and kinds[-1] == "completed", kinds
    page = requests.get(f"{api}/inference-jobs/{job_id}/results/?page_size=4&annotated=true", headers=auth).json()
    assert page["count"] == 6 and len(page["results"]) == 4
    assert [row["name"] for row in page["results"]] == ["shot0.jpg", "shot1.jpg", "shot2.jpg", "shot3.jpg"]
    assert all(row["predictions"] for row in page["results"]), "near-zero threshold: every image has boxes"
    assert base64.b64decode(page["results"][0]["annotated_image"])[:2] == b"\xff\xd8"
    picture = requests.get(f"{api}/inference-jobs/{job_id}/results/5/image/?annotated=true", headers=auth)
    assert picture.status_code == 200 and picture.content[:2] == b"\xff\xd8"


def test_serving_on_embedded_defaults(tmp_path):
    started = time.monotonic()
    with running_stack(tmp_path, env={"SERVING_DRAIN_SECONDS": "1"}) as stack:
        run_serving(stack)
    print(f"serving e2e took {time.monotonic() - started:.1f}s")
