"""Jobs survive crashes, stop when asked, and report the truth (real processes, PostgreSQL, Redis).

One stack serves the module: daphne, a Celery worker with beat, a Redis server of
the module's own (so it can be stopped), a fresh PostgreSQL database. Leases are
short (8 s) and the reaper runs every 2 s so crashes are noticed quickly.
"""

import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from tests import datagen
from tests.e2e.stack import postgres_database, redis_server, running_stack
from tests.e2e.test_pipeline import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLOW_TRAINING = {
    "model": "yolo11n",
    "epochs": 8,
    "imgsz": 96,
    "batch": 8,
    "workers": 0,
    "device": "cpu",
    "validate_after": False,
}
TERMINAL = {"completed", "failed", "cancelled"}


class Client:
    def __init__(self, stack):
        self.stack = stack
        self.api = f"{stack.url}/api/v1"
        token = requests.post(f"{self.api}/auth/token/", json={"username": "owner", "password": "owner-pw-123"}).json()[
            "token"
        ]
        self.auth = {"Authorization": f"Token {token}"}

    def get(self, path):
        response = requests.get(f"{self.api}{path}", headers=self.auth, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path, **kwargs):
        return requests.post(f"{self.api}{path}", headers=self.auth, timeout=60, **kwargs)

    def job(self, job_id):
        return self.get(f"/training-jobs/{job_id}/")

    def start_training(self, dataset_id, **overrides):
        response = self.post("/training-jobs/", json={"dataset": dataset_id, **SLOW_TRAINING, **overrides})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def wait(self, job_id, predicate, timeout, what):
        return wait_for(lambda: self.job(job_id), predicate, timeout, what)

    def epoch_events(self, job_id):
        events, url = [], f"/training-jobs/{job_id}/events/"
        while url:
            page = self.get(url)
            events += page["results"]
            url = page["next"] and page["next"].split("/api/v1", 1)[1]
        return [e for e in events if e["kind"] == "epoch"]


def trainer_pid(job_id):
    """The pid of the trainer subprocess of a job, found through its environment."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"trainers.ultralytics.train" not in cmdline:
                continue
            environ = dict(item.split("=", 1) for item in (entry / "environ").read_text().split("\0") if "=" in item)
        except OSError:
            continue
        if environ.get("JOB_ID") == str(job_id):
            return int(entry.name), environ
    return None, None


def wait_for_trainer(job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, environ = trainer_pid(job_id)
        if pid:
            return pid, environ
        time.sleep(0.2)
    raise AssertionError(f"no trainer process for job {job_id}")


def process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") >= 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    env = {
        "JOB_LEASE_SECONDS": "8",
        "JOB_LEASE_RENEW_SECONDS": "2",
        "REAPER_INTERVAL_SECONDS": "2",
        "JOB_QUEUES": "gpu,gpu-idle",
    }
    with (
        redis_server() as redis,
        postgres_database(database_url) as url,
        running_stack(tmp_path_factory.mktemp("durability"), database_url=url, redis_url=redis.url, env=env) as stack,
    ):
        stack.redis = redis
        client = Client(stack)
        archive = datagen.detection_zip(train=48, val=8, size=96, seed=3)
        response = client.post("/datasets/", data={"name": "shapes"}, files={"file": ("shapes.zip", archive)})
        assert response.status_code == 201, response.text
        dataset_id = response.json()["id"]
        wait_for(lambda: client.get(f"/datasets/{dataset_id}/"), lambda d: d["status"] == "ready", 120, "ingest")
        stack.dataset_id = dataset_id
        yield stack


def test_killed_trainer_resumes_from_its_last_checkpoint(stack):
    client = Client(stack)
    job_id = client.start_training(stack.dataset_id)
    client.wait(
        job_id,
        lambda j: len([c for c in j["checkpoints"] if c["kind"] == "last"]) >= 1 and j["epoch"] >= 2,
        180,
        "a synced checkpoint",
    )
    pid, _ = wait_for_trainer(job_id)
    os.kill(pid, signal.SIGKILL)

    job = client.wait(job_id, lambda j: j["status"] in TERMINAL, 300, "the resumed run")
    assert job["status"] == "completed", job
    assert job["epoch"] == 8 and job["model_version"]
    first, second = job["attempts"]
    assert first["outcome"] == "requeued" and first["exit_code"] == -signal.SIGKILL
    assert "SIGKILL" in first["detail"]
    assert second["outcome"] == "completed" and second["resumed_from_epoch"] >= 1
    resumed = second["resumed_from_epoch"]
    second_attempt_epochs = [e["payload"]["epoch"] for e in client.epoch_events(job_id) if e["attempt"] == 2]
    assert second_attempt_epochs == list(range(resumed + 1, 9)), "the epoch count continues, it does not restart"


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(stack):
    client = Client(stack)
    job_id = client.start_training(stack.dataset_id)
    client.wait(
        job_id, lambda j: len([c for c in j["checkpoints"] if c["kind"] == "last"]) >= 2, 180, "two synced checkpoints"
    )
    pid, _ = wait_for_trainer(job_id)
    os.kill(pid, signal.SIGSTOP)  # freeze the trainer so no newer checkpoint appears
    time.sleep(1.5)  # let the launcher finish syncing what was already published
    lasts = sorted((c for c in client.job(job_id)["checkpoints"] if c["kind"] == "last"), key=lambda c: c["epoch"])
    newest, previous = lasts[-1], lasts[-2]
    folder = stack.var_dir / "media" / "jobs" / str(job_id) / "checkpoints"
    torn = next(folder.glob(f"last-e{newest['epoch']:04d}-*.pt"))
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])  # a torn write
    os.kill(pid, signal.SIGKILL)

    job = client.wait(job_id, lambda j: j["status"] in TERMINAL, 300, "the resumed run")
    assert job["status"] == "completed", job
    assert job["attempts"][1]["resumed_from_epoch"] == previous["epoch"]


def test_cancel_stops_a_running_job_within_seconds(stack):
    client = Client(stack)
    job_id = client.start_training(stack.dataset_id, epochs=50)
    client.wait(job_id, lambda j: j["epoch"] >= 1, 180, "the first epoch")
    pid, _ = wait_for_trainer(job_id)

    asked = time.monotonic()
    response = client.post(f"/training-jobs/{job_id}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "cancelling"
    job = client.wait(job_id, lambda j: j["status"] in TERMINAL, 30, "the cancel")
    took = time.monotonic() - asked
    assert job["status"] == "cancelled"
    assert process_gone(pid), "the trainer process (and its GPU memory) is gone"
    assert took < 15, f"cancel took {took:.1f}s"
    print(f"running job cancelled in {took:.1f}s")
    assert client.post(f"/training-jobs/{job_id}/cancel/").status_code == 409


def test_a_cancelled_queued_job_never_starts(stack):
    client = Client(stack)
    job_id = client.start_training(stack.dataset_id, queue="gpu-idle")  # no worker consumes it yet
    assert client.job(job_id)["status"] == "queued"
    assert client.post(f"/training-jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    stack.start_worker("idle-worker", queues="gpu-idle", beat=False)
    time.sleep(8)  # the worker receives the message and must find nothing to do
    job = client.job(job_id)
    assert job["status"] == "cancelled" and job["attempts"] == [] and job["started_at"] is None
    assert "not queued any more" in stack.log("idle-worker")
    stack.kill("idle-worker")


def test_killed_worker_loses_no_job_and_its_writer_is_fenced_off(stack):
    client = Client(stack)
    job_id = client.start_training(stack.dataset_id)
    client.wait(job_id, lambda j: len(j["checkpoints"]) >= 1 and j["epoch"] >= 2, 180, "a synced checkpoint")
    pid, environ = wait_for_trainer(job_id)
    stack.kill("worker")  # kill -9 the worker and its pool: the trainer dies with them
    wait_for(lambda: process_gone(pid), bool, 10, "the trainer to die with its worker")

    stack.start_worker()  # a fresh worker; its beat runs the reaper
    job = client.wait(job_id, lambda j: j["attempt"] >= 2, 120, "the reaper to re-queue and a worker to claim")
    assert job["attempts"][0]["outcome"] == "requeued"
    assert "lease" in job["attempts"][0]["detail"]

    stale = requests.post(
        environ["CALLBACK_URL"],
        json={"type": "epoch", "fencing_token": int(environ["FENCING_TOKEN"]), "epoch": 8},
        headers={"Authorization": f"Bearer {environ['CALLBACK_TOKEN']}"},
        timeout=10,
    )
    assert stale.status_code == 403, stale.text  # the old writer's token died with its attempt

    job = client.wait(job_id, lambda j: j["status"] in TERMINAL, 300, "the new attempt")
    assert job["status"] == "completed", job
    assert job["attempts"][1]["resumed_from_epoch"] >= 1


def test_a_drained_worker_takes_no_new_job_until_resumed(stack):
    client = Client(stack)
    node = re.findall(r"\] (\S+@\S+) ready\.", stack.log("worker", tail=None))[-1]
    drained = stack.manage("drain_worker", node, "--queue", "gpu")
    assert "no longer consuming from 'gpu'" in drained.stdout or "gpu" in drained.stdout, drained.stdout
    job_id = client.start_training(stack.dataset_id, epochs=1)
    time.sleep(6)
    assert client.job(job_id)["status"] == "queued", "a drained worker must not take the job"

    stack.manage("drain_worker", node, "--queue", "gpu", "--resume")
    job = client.wait(job_id, lambda j: j["status"] in TERMINAL, 180, "the job after the worker resumed")
    assert job["status"] == "completed", job


def test_redis_outage_during_a_run_loses_and_duplicates_nothing(stack):
    client = Client(stack)
    job_id = client.start_training(stack.dataset_id)
    client.wait(job_id, lambda j: j["epoch"] >= 1, 180, "the first epoch")
    stack.redis.stop()
    time.sleep(12)
    stack.redis.start()

    job = client.wait(job_id, lambda j: j["status"] in TERMINAL, 300, "the run")
    assert job["status"] == "completed", job
    assert len(job["attempts"]) == 1, job["attempts"]
    epochs = [e["payload"]["epoch"] for e in client.epoch_events(job_id)]
    assert epochs == list(range(1, 9))
    versions = client.get(
        f"/model-versions/?registered_model__slug={client.get('/model-versions/')['results'][0]['registered_model_slug']}"
    )
    assert sum(1 for v in versions["results"] if v["training_job"] == job_id) == 1
