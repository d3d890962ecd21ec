"""The whole pipeline on real processes: upload, train, live feed, admin review, deploy, predict."""

import asyncio
import hashlib
import json
import os
import re
import threading
import time

import pytest
import requests
import websockets

from tests import datagen
from tests.e2e.stack import postgres_database, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRAIN_CONFIG = {"model": "yolo11n", "epochs": 3, "imgsz": 64, "batch": 8, "workers": 0, "device": "cpu"}


def wait_for(fetch, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fetch()
        if predicate(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last value: {value}")


class FeedRecorder(threading.Thread):
    """Collects the messages of /ws/jobs/<id>/ until the job reaches a terminal state."""

    def __init__(self, url, token, origin):
        super().__init__(daemon=True)
        self.url, self.token, self.origin = url, token, origin
        self.messages = []
        self.error = None
        self.connected = threading.Event()

    def run(self):
        try:
            asyncio.run(self._listen())
        except Exception as exc:  # noqa: BLE001 - surfaced by the test's assertions
            self.error = exc
            self.connected.set()

    async def _listen(self):
        headers = {"Authorization": f"Token {self.token}"}
        async with websockets.connect(self.url, additional_headers=headers, origin=self.origin) as ws:
            self.connected.set()
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=600))
                self.messages.append(message)
                if message.get("kind") in {"completed", "failed", "cancelled"}:
                    return


def upload_dataset(api, auth, archive, timeout=180):
    """Upload a zip and wait for its ingest; returns the data set once it is ready."""
    response = requests.post(
        f"{api}/datasets/", headers=auth, data={"name": "shapes"}, files={"file": ("shapes.zip", archive)}
    )
    assert response.status_code == 201, response.text
    dataset_id = response.json()["id"]
    dataset = wait_for(
        lambda: requests.get(f"{api}/datasets/{dataset_id}/", headers=auth).json(),
        lambda d: d["status"] != "validating",
        timeout,
        "data set validation",
    )
    assert dataset["status"] == "ready", dataset
    return dataset


def admin_login(base, username, password):
    session = requests.Session()
    page = session.get(f"{base}/admin/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{base}/admin/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf, "next": "/admin/"},
        headers={"Referer": f"{base}/admin/login/"},
    )
    assert response.ok and "/admin/login/" not in response.url, response.text[:500]
    return session


def admin_approve(base, session, version_id):
    changelist = f"{base}/admin/models_registry/modelversion/"
    page = session.get(changelist)
    assert page.status_code == 200
    assert 'value="approve_versions"' in page.text, "the reviewer must see the Approve action"
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        changelist,
        data={"action": "approve_versions", "_selected_action": [str(version_id)], "csrfmiddlewaretoken": csrf},
        headers={"Referer": changelist},
    )
    assert response.status_code == 200
    assert "Approved 1 version(s)." in response.text


def run_pipeline(stack):
    base = stack.url
    api = f"{base}/api/v1"
    token = requests.post(f"{api}/auth/token/", json={"username": "owner", "password": "owner-pw-123"}).json()["token"]
    auth = {"Authorization": f"Token {token}"}
    reviewer_token = requests.post(
        f"{api}/auth/token/", json={"username": "reviewer", "password": "reviewer-pw-123"}
    ).json()["token"]

    # 1. Upload a generated two-class data set; the worker validates it.
    dataset = upload_dataset(api, auth, datagen.detection_zip(train=24, val=8, size=64, seed=7))
    dataset_id = dataset["id"]
    assert dataset["classes"] == ["square", "disc"]
    assert dataset["num_images"] == 32

    # 2. Start training and follow it over the WebSocket.
    response = requests.post(f"{api}/training-jobs/", headers=auth, json={"dataset": dataset_id, **TRAIN_CONFIG})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    feed = FeedRecorder(f"ws://127.0.0.1:{stack.port}/ws/jobs/{job['id']}/", token, base)
    feed.start()
    assert feed.connected.wait(30) and feed.error is None, feed.error
    job = wait_for(
        lambda: requests.get(f"{api}/training-jobs/{job['id']}/", headers=auth).json(),
        lambda j: j["status"] in {"completed", "failed", "cancelled"},
        900,
        "training",
    )
    assert job["status"] == "completed", job
    assert job["epoch"] == 3 and job["progress"] == 100.0
    assert "mAP50" in job["metrics"]
    feed.join(30)
    assert feed.error is None, feed.error
    kinds = [m.get("kind") for m in feed.messages]
    assert feed.messages[0]["type"] == "snapshot" and feed.messages[0]["job"]["id"] == job["id"]
    assert kinds.count("epoch") == 3, kinds
    epochs = [m["payload"]["epoch"] for m in feed.messages if m.get("kind") == "epoch"]
    assert epochs == [1, 2, 3]
    assert kinds[-1] == "completed"

    # 3. The best checkpoint is validated automatically: per-class metrics and a confusion matrix.
    version_id = job["model_version"]
    validations = wait_for(
        lambda: requests.get(f"{api}/validation-jobs/", headers=auth).json()["results"],
        lambda rows: rows and rows[0]["status"] in {"completed", "failed"},
        300,
        "automatic validation",
    )
    validation = validations[0]
    assert validation["status"] == "completed", validation
    assert validation["model_version"] == version_id
    result = validation["result"]
    assert {row["class"] for row in result["per_class"]} <= {"square", "disc", "all"}
    assert result["confusion_matrix"]["labels"] == ["square", "disc", "background"]
    assert sum(map(sum, result["confusion_matrix"]["matrix"])) > 0
    image = requests.get(result["confusion_matrix_image"], headers=auth)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

    # 4. The version waits for review; its trainer cannot approve it.
    version = requests.get(f"{api}/model-versions/{version_id}/", headers=auth).json()
    assert version["status"] == "pending_review"
    assert len(version["artifact_sha256"]) == 64
    assert requests.post(f"{api}/model-versions/{version_id}/approve/", headers=auth, json={}).status_code == 403
    response = requests.post(
        f"{api}/deployments/", headers=auth, json={"model_version": version_id, "name": "too early"}
    )
    assert response.status_code == 409, response.text

    # 5. A reviewer sees the evidence on one screen and approves it through the Django admin.
    reviewer_session = admin_login(base, "reviewer", "reviewer-pw-123")
    page = reviewer_session.get(f"{base}/admin/models_registry/modelversion/{version_id}/change/").text
    assert "Per-class metrics" in page and "Confusion matrix" in page and 'value="Approve"' in page
    assert "Predictions next to ground truth" in page
    picture = reviewer_session.get(f"{base}/admin/models_registry/modelversion/{version_id}/evidence/gallery/0/")
    assert picture.status_code == 200 and picture.content[:2] == b"\xff\xd8"
    admin_approve(base, reviewer_session, version_id)
    version = requests.get(
        f"{api}/model-versions/{version_id}/", headers={"Authorization": f"Token {reviewer_token}"}
    ).json()
    assert version["status"] == "approved" and version["reviewer"] == "reviewer"

    # 6. Deploy and predict.
    response = requests.post(f"{api}/deployments/", headers=auth, json={"model_version": version_id, "name": "shapes"})
    assert response.status_code == 202, response.text
    deployment_id = response.json()["id"]
    deployment = wait_for(
        lambda: requests.get(f"{api}/deployments/{deployment_id}/", headers=auth).json(),
        lambda d: d["status"] != "starting",
        180,
        "deployment",
    )
    assert deployment["status"] == "active", deployment
    response = requests.post(
        f"{api}/deployments/{deployment_id}/predict/",
        headers=auth,
        data={"conf": "0.0001"},
        files={"image": ("probe.jpg", datagen.sample_image_bytes())},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["inference_time_ms"] > 0
    assert body["predictions"], "with a near-zero threshold a trained model returns boxes"
    first = body["predictions"][0]
    assert first["class_name"] in {"square", "disc"} and len(first["bbox"]) == 4
    response = requests.post(
        f"{api}/deployments/{deployment_id}/predict/", headers=auth, files={"image": ("x.jpg", b"<html>no</html>")}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "not_an_image"

    # 7. Export to ONNX as a job and download it with its checksum.
    response = requests.post(f"{api}/model-versions/{version_id}/export/", headers=auth, json={"format": "onnx"})
    assert response.status_code == 202, response.text
    version = wait_for(
        lambda: requests.get(f"{api}/model-versions/{version_id}/", headers=auth).json(),
        lambda v: v["exports"],
        300,
        "the ONNX export",
    )
    download = requests.get(f"{api}/model-versions/{version_id}/download/?export=onnx", headers=auth)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == download.headers["X-Checksum-SHA256"]
    assert version["exports"][0]["sha256"] == download.headers["X-Checksum-SHA256"]

    # 8. Stop it: predict answers 503 with Retry-After.
    assert requests.post(f"{api}/deployments/{deployment_id}/stop/", headers=auth).status_code == 202
    wait_for(
        lambda: requests.get(f"{api}/deployments/{deployment_id}/", headers=auth).json(),
        lambda d: d["status"] == "stopped",
        60,
        "deployment stop",
    )
    response = requests.post(
        f"{api}/deployments/{deployment_id}/predict/",
        headers=auth,
        files={"image": ("probe.jpg", datagen.sample_image_bytes())},
    )
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_pipeline_on_embedded_defaults(tmp_path):
    started = time.monotonic()
    with running_stack(tmp_path) as stack:
        run_pipeline(stack)
    print(f"embedded e2e took {time.monotonic() - started:.1f}s")


def test_pipeline_on_postgresql_and_redis(tmp_path):
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/7"
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    started = time.monotonic()
    with (
        postgres_database(database_url) as url,
        running_stack(tmp_path, database_url=url, redis_url=redis_url) as stack,
    ):
        run_pipeline(stack)
    print(f"postgres+redis e2e took {time.monotonic() - started:.1f}s")
