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


# --- micro-batching in the real Predictor (a stand-in model: the batching is what is tested)


class CountingModel:
    """Answers each image with one box whose x2 is the image's width; records each call.

    With `hold()`, the next call blocks until `release()`: requests sent meanwhile queue up, with
    no sleep deciding whether they made it in time.
    """

    names = {0: "square"}

    def __init__(self):
        self.calls = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def hold(self):
        self.entered.clear()
        self.gate.clear()

    def release(self):
        self.gate.set()

    def predict(self, images, **options):
        import torch

        self.calls.append((len(images), options))
        self.entered.set()
        self.gate.wait(10)
        results = []
        for image in images:
            width = image.size[0]
            boxes = type(
                "Boxes",
                (),
                {
                    "xyxy": torch.tensor([[0.0, 0.0, float(width), 1.0]]),
                    "conf": torch.tensor([width / 1000]),
                    "cls": torch.tensor([0.0]),
                },
            )
            results.append(type("Result", (), {"boxes": boxes})())
        return results


def queued(predictor, count):
    """Wait until `count` requests wait in the predictor's queue."""
    deadline = time.monotonic() + 10
    while predictor._queue.qsize() < count:
        assert time.monotonic() < deadline, "the requests never queued"
        time.sleep(0.001)


def busy_predictor(model, max_batch=8):
    """A Predictor whose model is busy with a first request until `model.release()`; returns it and that request."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from trainers.ultralytics.serve import Predictor

    predictor = Predictor(None, model=model, max_batch=max_batch)
    model.calls.clear()  # the warm-up
    model.hold()
    pool = ThreadPoolExecutor(8)
    first = pool.submit(predictor.predict, Image.new("RGB", (100, 10)))
    assert model.entered.wait(10)
    return predictor, pool, first


def test_concurrent_requests_are_predicted_together_and_each_gets_its_own_answer():
    from PIL import Image

    model = CountingModel()
    predictor, pool, first = busy_predictor(model)
    with pool:
        rest = [pool.submit(predictor.predict, Image.new("RGB", (101 + i, 10))) for i in range(6)]
        queued(predictor, 6)
        model.release()
        answers = [first.result(5)] + [future.result(5) for future in rest]

    assert [round(a["predictions"][0]["bbox"][2]) for a in answers] == [100, 101, 102, 103, 104, 105, 106]
    assert [size for size, _ in model.calls] == [1, 6]  # the six that queued meanwhile went in one call
    assert answers[-1]["batch_size"] == 6


def test_requests_with_other_options_are_not_mixed_into_a_batch():
    from PIL import Image

    model = CountingModel()
    predictor, pool, first = busy_predictor(model)
    with pool:
        low = [pool.submit(predictor.predict, Image.new("RGB", (60, 10)), conf=0.1) for _ in range(2)]
        high = [pool.submit(predictor.predict, Image.new("RGB", (70, 10)), conf=0.9) for _ in range(2)]
        queued(predictor, 4)
        model.release()
        for future in [first, *low, *high]:
            future.result(5)

    later = model.calls[1:]
    assert sorted((size, options["conf"]) for size, options in later) == [(2, 0.1), (2, 0.9)]


def test_max_batch_one_predicts_one_image_per_call():
    from PIL import Image

    model = CountingModel()
    predictor, pool, first = busy_predictor(model, max_batch=1)
    with pool:
        rest = [pool.submit(predictor.predict, Image.new("RGB", (80, 10))) for _ in range(3)]
        queued(predictor, 3)
        model.release()
        for future in [first, *rest]:
            future.result(5)

    assert [size for size, _ in model.calls] == [1, 1, 1, 1]


def test_a_failing_model_call_fails_every_request_of_its_batch_and_the_next_still_works():
    from PIL import Image

    from trainers.ultralytics.serve import Predictor

    model = CountingModel()
    predictor = Predictor(None, model=model)
    original = model.predict
    model.predict = lambda images, **options: (_ for _ in ()).throw(RuntimeError("CUDA out of memory"))

    with pytest.raises(RuntimeError, match="out of memory"):
        predictor.predict(Image.new("RGB", (10, 10)))
    model.predict = original
    assert predictor.predict(Image.new("RGB", (10, 10)))["predictions"]
