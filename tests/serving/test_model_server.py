"""The model server's HTTP side with a stand-in predictor: keep-alive, shutdown drains."""

import threading
import time
from http.server import ThreadingHTTPServer

import pytest
import requests

from tests import datagen
from trainers.ultralytics.serve import InFlight, make_handler, serve_until_drained


class SlowPredictor:
    names = {0: "square", 1: "disc"}

    def __init__(self, seconds):
        self.seconds = seconds
        self.calls = []

    def predict(self, image, **options):
        self.calls.append(options)
        time.sleep(self.seconds)
        return {"predictions": [], "inference_time_ms": self.seconds * 1000}


@pytest.fixture
def model_server():
    predictor = SlowPredictor(0.5)
    in_flight = InFlight()
    server_ref = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(predictor, "ab" * 32, "secret", server_ref, in_flight))
    server.daemon_threads = True
    server_ref.append(server)
    done = threading.Event()

    def run():
        serve_until_drained(server, in_flight, drain_timeout=10)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield url, predictor, done
    if not done.is_set():
        server.shutdown()


def test_health_reports_the_pinned_hash(model_server):
    url, _, _ = model_server

    assert requests.get(f"{url}/health", timeout=5).json()["sha256"] == "ab" * 32


def test_options_reach_the_predictor(model_server):
    url, predictor, _ = model_server

    response = requests.post(
        f"{url}/predict",
        params={"conf": 0.3, "iou": 0.4, "max_det": 5, "classes": "1"},
        data=datagen.sample_image_bytes(),
        timeout=10,
    )

    assert response.status_code == 200
    assert predictor.calls == [{"conf": 0.3, "iou": 0.4, "max_det": 5, "classes": [1]}]


def test_shutdown_needs_the_token(model_server):
    url, _, done = model_server

    assert requests.post(f"{url}/shutdown", headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 403
    assert not done.wait(0.3)


def test_shutdown_finishes_the_requests_in_flight_first(model_server):
    url, _, done = model_server
    answers = []
    request = threading.Thread(
        target=lambda: answers.append(requests.post(f"{url}/predict", data=datagen.sample_image_bytes(), timeout=10))
    )
    request.start()
    time.sleep(0.15)  # the prediction is under way

    response = requests.post(f"{url}/shutdown", headers={"Authorization": "Bearer secret"}, timeout=5)

    assert response.status_code == 200 and response.headers["Connection"] == "close"
    assert not done.wait(0.1), "the server must wait for the prediction it is answering"
    request.join(10)
    assert answers[0].status_code == 200
    assert done.wait(5)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{url}/predict", data=datagen.sample_image_bytes(), timeout=5)


def test_replies_are_not_held_back_by_nagles_algorithm():
    handler = make_handler(SlowPredictor(0), "ab" * 32, "secret", [])

    assert handler.disable_nagle_algorithm is True
