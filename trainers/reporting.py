"""HTTP callbacks from a trainer to the portal."""

import contextlib
import json
import logging
import queue
import threading
import time
import traceback
import urllib.error
import urllib.request

logger = logging.getLogger("trainers.reporting")


class CallbackRefused(Exception):
    """The portal refused a callback (4xx): the job was cancelled, taken over, or finished."""


class PortalReporter:
    """Posts job events to the portal's callback URL with the job's tokens.

    Progress events are rate-limited (at most one per `progress_interval`
    seconds). `send` delivers at once (and retries on network errors);
    `post` hands the event to a background thread that delivers events in
    order, so the training loop never waits for the network. A refusal seen
    by that thread is raised by the next `post` or by `flush`.

    Args:
        callback_url: The job's callback endpoint.
        token: The job's secret callback token.
        fencing_token: The attempt's fencing token.
        progress_interval: Minimum seconds between two progress events.
        retries: How many times a failed send is retried.
    """

    def __init__(self, callback_url, token, fencing_token, *, progress_interval=2.0, retries=5, timeout=10):
        self.callback_url = callback_url
        self.token = token
        self.fencing_token = int(fencing_token)
        self.progress_interval = progress_interval
        self.retries = retries
        self.timeout = timeout
        self._last_progress = 0.0
        self._outbox = queue.Queue()
        self._refusal = None
        self._sender = None

    def _drain(self):
        while True:
            event_type, fields = self._outbox.get()
            try:
                if self._refusal is None:
                    self.send(event_type, **fields)
            except CallbackRefused as exc:
                self._refusal = exc
            except OSError as exc:
                logger.warning("event %s not delivered: %s", event_type, exc)
            finally:
                self._outbox.task_done()

    def post(self, event_type, **fields):
        """Queue an event for the background sender (in order); raise an earlier refusal."""
        if self._refusal is not None:
            raise self._refusal
        if self._sender is None:
            self._sender = threading.Thread(target=self._drain, name="portal-reporter", daemon=True)
            self._sender.start()
        self._outbox.put((event_type, fields))

    def flush(self):
        """Wait until every posted event was delivered; raise a refusal if one happened."""
        self._outbox.join()
        if self._refusal is not None:
            raise self._refusal

    def send(self, event_type, **fields):
        """Send one event; returns the portal's JSON reply.

        Raises:
            CallbackRefused: when the portal answers 4xx (never retried).
            OSError: when the portal stays unreachable after all retries.
        """
        body = json.dumps({"type": event_type, "fencing_token": self.fencing_token, **fields}).encode()
        request = urllib.request.Request(
            self.callback_url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        delay = 0.5
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500:
                    raise CallbackRefused(f"{event_type}: {exc.code} {exc.read()[:500]!r}") from exc
                error = exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                error = exc
            if attempt < self.retries:
                logger.warning("callback %s failed (%s); retrying in %.1fs", event_type, error, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10)
        raise OSError(f"callback {event_type} failed after {self.retries + 1} tries: {error}")

    def progress(self, **fields):
        """Send a progress event unless one was sent less than `progress_interval` ago."""
        now = time.monotonic()
        if now - self._last_progress < self.progress_interval:
            return None
        self._last_progress = now
        self.post("progress", **fields)
        return True


def run_reported(reporter, work):
    """Run a CLI's work and turn its outcome into an exit code the launcher understands.

    Returns 0 when `work()` returned, 1 when it failed. A failure is reported to the
    portal (after the events posted before it, in order); a refusal by the portal
    (the job was cancelled, taken over or finished) stops the CLI without reporting.
    """
    try:
        work()
    except CallbackRefused as exc:
        logger.error("the portal refused a callback, stopping: %s", exc)
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure is reported, then the exit code says it
        traceback.print_exc()
        with contextlib.suppress(OSError, CallbackRefused):
            reporter.flush()
        try:
            reporter.send("failed", error=f"{type(exc).__name__}: {exc}")
        except (OSError, CallbackRefused):
            logger.exception("could not report the failure")
        return 1
    return 0
