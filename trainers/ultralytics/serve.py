"""A model server: holds one YOLO checkpoint warm and answers predict requests over HTTP.

Run as ``python -m trainers.ultralytics.serve`` with:
  WEIGHTS          path of the checkpoint
  EXPECTED_SHA256  the checkpoint's sha256; any other file is refused (exit 3)
  HOST, PORT       where to listen (PORT=0 picks a free port)
  READY_FILE       where to write {"port": N} once the model is loaded
  SHUTDOWN_TOKEN   secret that POST /shutdown must carry
  DEVICE           cpu, cuda:0, ... (default: Ultralytics' choice)
  MAX_BATCH        most images predicted in one model call (default 8; 1 turns batching off)
  BATCH_WAIT_MS    how long a batch waits for more requests (default 0: only those already queued)

Endpoints: GET /health; POST /predict?conf=&iou=&max_det=&classes=0,2 with the
image bytes as the body; POST /shutdown with ``Authorization: Bearer <token>``.

Shutdown drains: the server stops accepting connections, finishes the requests it is
answering (up to DRAIN_TIMEOUT seconds), closes kept-alive connections after their
next answer, and only then exits.
"""

import hashlib
import hmac
import io
import json
import logging
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

os.environ.setdefault("YOLO_OFFLINE", "true")

from trainers.ultralytics.predict import predictions_of  # noqa: E402

logger = logging.getLogger("trainers.ultralytics.serve")
MAX_BODY_BYTES = 50 * 1024 * 1024
DRAIN_TIMEOUT = 30.0


class InFlight:
    """Counts the predict requests being answered, so shutdown can wait for them."""

    def __init__(self):
        self.count = 0
        self.stopping = False
        self._condition = threading.Condition()

    def __enter__(self):
        with self._condition:
            self.count += 1

    def __exit__(self, *exc):
        with self._condition:
            self.count -= 1
            self._condition.notify_all()

    def wait_idle(self, timeout):
        with self._condition:
            return self._condition.wait_for(lambda: self.count == 0, timeout=timeout)


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class Predictor:
    """A loaded model behind a micro-batcher: requests that wait together are predicted together.

    A YOLO model is not thread-safe, so one thread runs it. It takes the oldest request and,
    without waiting (or up to `batch_wait_ms` when set), every other queued request with the same
    options, up to `max_batch` images, and predicts them in one call. Under no load a batch is one
    image and adds no latency; under concurrent load the model's batched throughput is used.
    """

    def __init__(self, weights, device="", *, max_batch=8, batch_wait_ms=0.0, model=None):
        if model is None:
            from ultralytics import YOLO

            model = YOLO(weights)
        self.model = model
        self.device = device or None
        self.names = self.model.names
        self.max_batch = max(1, int(max_batch))
        self.batch_wait = max(0.0, float(batch_wait_ms)) / 1000
        self._queue = queue.SimpleQueue()
        self._held = []  # requests whose options differ from the batch being gathered
        threading.Thread(target=self._run, name="predictor", daemon=True).start()
        self._warm_up()

    def _warm_up(self):
        """Run one prediction at start so the first request does not pay for lazy set-up."""
        from PIL import Image

        self.predict(Image.new("RGB", (64, 64)))

    def predict(self, image, *, conf=0.25, iou=0.7, max_det=300, classes=None):
        options = {"conf": conf, "iou": iou, "max_det": max_det, "classes": classes}
        request = _Request(image, options)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def _next_batch(self):
        first = self._held.pop(0) if self._held else self._queue.get()
        batch, key = [first], first.key
        still_held = []
        for request in self._held:
            (batch if request.key == key and len(batch) < self.max_batch else still_held).append(request)
        self._held = still_held
        deadline = time.perf_counter() + self.batch_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.perf_counter()
            try:
                request = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            (batch if request.key == key else self._held).append(request)
        return batch

    def _run(self):
        while True:
            batch = self._next_batch()
            started = time.perf_counter()
            try:
                results = self.model.predict(
                    [request.image for request in batch], device=self.device, verbose=False, **batch[0].options
                )
            except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
                for request in batch:
                    request.error = exc
                    request.done.set()
                continue
            elapsed_ms = (time.perf_counter() - started) * 1000
            for request, result in zip(batch, results, strict=True):
                request.result = {
                    "predictions": predictions_of(result, self.names),
                    "inference_time_ms": round(elapsed_ms, 3),
                    "batch_size": len(batch),
                }
                request.done.set()


class _Request:
    def __init__(self, image, options):
        self.image = image
        self.options = options
        self.key = json.dumps(options, sort_keys=True)
        self.done = threading.Event()
        self.result = None
        self.error = None


def _query_float(query, key, default, low, high):
    raw = query.get(key, [None])[0]
    if raw is None or raw == "":
        return default
    value = float(raw)
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low} and {high}")
    return value


def make_handler(predictor, sha256, shutdown_token, server_ref, in_flight=None):
    in_flight = in_flight or InFlight()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive for the portal's pooled connection
        # Headers and body go out as two writes; with Nagle's algorithm on, the body waits for
        # the client's delayed ACK of the headers (40 ms on Linux) on a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, fmt, *args):
            logger.debug(fmt, *args)

        def _reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if in_flight.stopping:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def _body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise ValueError("request body too large")
            return self.rfile.read(length)

        def do_GET(self):  # noqa: N802 - http.server's naming
            if urlparse(self.path).path == "/health":
                self._reply(200, {"status": "ok", "sha256": sha256, "classes": predictor.names})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self):  # noqa: N802
            url = urlparse(self.path)
            try:
                body = self._body()
            except ValueError as exc:
                self._reply(413, {"error": str(exc)})
                return
            if url.path == "/shutdown":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if not hmac.compare_digest(token, shutdown_token):
                    self._reply(403, {"error": "bad token"})
                    return
                in_flight.stopping = True
                self._reply(200, {"status": "stopping"})
                threading.Thread(target=server_ref[0].shutdown, daemon=True).start()
                return
            if url.path != "/predict":
                self._reply(404, {"error": "not found"})
                return
            with in_flight:
                self._predict(url, body)

        def _predict(self, url, body):
            from PIL import Image

            query = parse_qs(url.query)
            try:
                conf = _query_float(query, "conf", 0.25, 0.0, 1.0)
                iou = _query_float(query, "iou", 0.7, 0.0, 1.0)
                max_det = int(_query_float(query, "max_det", 300, 1, 10000))
                raw_classes = query.get("classes", [""])[0]
                classes = [int(c) for c in raw_classes.split(",") if c != ""] or None
                image = Image.open(io.BytesIO(body), formats=["JPEG", "PNG", "BMP", "WEBP"]).convert("RGB")
            except (ValueError, OSError) as exc:
                self._reply(400, {"error": f"bad request: {exc}"})
                return
            self._reply(200, predictor.predict(image, conf=conf, iou=iou, max_det=max_det, classes=classes))

    return Handler


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    weights = os.environ["WEIGHTS"]
    expected = os.environ["EXPECTED_SHA256"]
    actual = file_sha256(weights)
    if actual != expected:
        print(f"refusing {weights}: sha256 {actual} is not the pinned {expected}", file=sys.stderr)
        return 3
    predictor = Predictor(
        weights,
        os.environ.get("DEVICE", ""),
        max_batch=int(os.environ.get("MAX_BATCH", "8")),
        batch_wait_ms=float(os.environ.get("BATCH_WAIT_MS", "0")),
    )
    server_ref = []
    in_flight = InFlight()
    handler = make_handler(predictor, actual, os.environ.get("SHUTDOWN_TOKEN", ""), server_ref, in_flight)
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "0"))), handler)
    server.daemon_threads = True
    server_ref.append(server)
    ready_file = os.environ.get("READY_FILE")
    if ready_file:
        tmp = Path(ready_file).with_suffix(".tmp")
        tmp.write_text(json.dumps({"port": server.server_address[1], "pid": os.getpid()}))
        tmp.replace(ready_file)
    logger.info("serving %s on port %s", weights, server.server_address[1])
    serve_until_drained(server, in_flight)
    return 0


def serve_until_drained(server, in_flight, drain_timeout=DRAIN_TIMEOUT):
    """Serve until /shutdown, then wait for the predictions being answered before returning."""
    server.serve_forever()
    server.server_close()
    if not in_flight.wait_idle(drain_timeout):
        logger.warning("exiting with %s requests unanswered after %ss", in_flight.count, drain_timeout)


if __name__ == "__main__":
    sys.exit(main())
