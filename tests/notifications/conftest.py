import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest


class Receiver:
    """A real HTTP server on 127.0.0.1 that records each request and answers scripted statuses."""

    def __init__(self):
        self.requests = []
        self.statuses = []  # answered in order; 200 once exhausted
        self.redirect_to = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook's name
                length = int(self.headers.get("Content-Length", 0))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": self.rfile.read(length)}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                reply = json.dumps({"received": len(receiver.requests)}).encode()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", receiver.redirect_to or "/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/portal"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    # CI runs on PostgreSQL and Redis, where the default refuses private addresses.
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    with Receiver() as server:
        yield server


@pytest.fixture
def enqueued():
    """The delivery task's apply_async, mocked: what would have been sent to the broker."""
    with mock.patch("notifications.tasks.webhook_delivery_send.apply_async") as apply_async:
        yield apply_async


def enqueued_ids(apply_async):
    return [call.kwargs["args"][0] for call in apply_async.call_args_list]
