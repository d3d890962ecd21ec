"""trainers/ is a Django-free library configured by environment variables."""

import ast
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from trainers.config import ConfigError, TrainConfig
from trainers.reporting import CallbackRefused, PortalReporter
from trainers.ultralytics.train import normalise_metrics

TRAINERS = Path(__file__).resolve().parents[2] / "trainers"
REQUIRED = {
    "JOB_ID": "7",
    "CALLBACK_URL": "http://127.0.0.1:1/cb",
    "CALLBACK_TOKEN": "secret",
    "FENCING_TOKEN": "2",
    "DATA_YAML": "/tmp/data.yaml",
    "OUTPUT_PATH": "/tmp/out",
}


def test_no_module_in_trainers_imports_django():
    for path in TRAINERS.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"django", "rest_framework", "channels", "celery"}, (path, name)


def test_config_reads_the_environment_with_defaults():
    config = TrainConfig.from_env({**REQUIRED, "EPOCHS": "3", "IMGSZ": "64"})
    assert config.job_id == "7" and config.fencing_token == 2
    assert config.epochs == 3 and config.imgsz == 64
    assert config.model_name == "yolo11n" and config.batch == 16


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_config_names_the_missing_variable(missing):
    env = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        TrainConfig.from_env(env)


def test_config_refuses_a_malformed_number():
    with pytest.raises(ConfigError, match="EPOCHS"):
        TrainConfig.from_env({**REQUIRED, "EPOCHS": "three"})


def test_metric_names_are_normalised():
    metrics = normalise_metrics({"metrics/mAP50(B)": 0.5, "metrics/mAP50-95(B)": "0.25", "val/box_loss": 1, "x": "n/a"})
    assert metrics == {"mAP50": 0.5, "mAP50-95": 0.25, "val/box_loss": 1.0}


class _Recorder(BaseHTTPRequestHandler):
    received = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.headers["Authorization"], body))
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def portal_stub():
    _Recorder.received = []
    _Recorder.status = 200
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cb", _Recorder
    server.shutdown()


def test_reporter_sends_tokens_and_rate_limits_progress(portal_stub):
    url, recorder = portal_stub
    reporter = PortalReporter(url, "tok", 3, progress_interval=60)
    reporter.send("started", device="cpu")
    reporter.progress(epoch=1, batch=1, batches=4)
    reporter.progress(epoch=1, batch=2, batches=4)  # within the interval: dropped
    reporter.flush()
    assert [body["type"] for _, body in recorder.received] == ["started", "progress"]
    assert all(auth == "Bearer tok" and body["fencing_token"] == 3 for auth, body in recorder.received)


def test_reporter_does_not_retry_a_refusal(portal_stub):
    url, recorder = portal_stub
    recorder.status = 409
    reporter = PortalReporter(url, "tok", 1, retries=3)
    with pytest.raises(CallbackRefused):
        reporter.send("epoch", epoch=1)
    assert len(recorder.received) == 1


def test_posted_events_arrive_in_order_and_a_refusal_surfaces(portal_stub):
    url, recorder = portal_stub
    reporter = PortalReporter(url, "tok", 1, retries=0)
    for epoch in range(1, 6):
        reporter.post("epoch", epoch=epoch)
    reporter.flush()
    assert [body["epoch"] for _, body in recorder.received] == [1, 2, 3, 4, 5]

    recorder.status = 409
    reporter.post("epoch", epoch=6)
    with pytest.raises(CallbackRefused):
        reporter.flush()
    with pytest.raises(CallbackRefused):
        reporter.post("epoch", epoch=7)


def test_run_reported_reports_a_failure_after_the_events_before_it(portal_stub):
    from trainers.reporting import run_reported

    url, recorder = portal_stub
    reporter = PortalReporter(url, "tok", 1, retries=0)

    def work():
        reporter.post("epoch", epoch=1)
        raise RuntimeError("out of memory")

    assert run_reported(reporter, work) == 1
    assert [body["type"] for _, body in recorder.received] == ["epoch", "failed"]
    assert recorder.received[-1][1]["error"] == "RuntimeError: out of memory"


def test_run_reported_stops_without_reporting_when_the_portal_refuses(portal_stub):
    from trainers.reporting import run_reported

    url, recorder = portal_stub
    recorder.status = 409
    reporter = PortalReporter(url, "tok", 1, retries=0)
    assert run_reported(reporter, lambda: reporter.send("epoch", epoch=1)) == 1
    assert [body["type"] for _, body in recorder.received] == ["epoch"]
    recorder.status = 200
    assert run_reported(reporter, lambda: None) == 0
