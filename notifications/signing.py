"""Webhook signatures: `X-Portal-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The HMAC key is the endpoint's secret (UTF-8) and the message is `f"{t}.{raw body}"`, so a
captured request cannot be replayed later (the timestamp is signed) or with another body.
This module imports nothing from Django: integrators may copy it as it is.
"""

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Portal-Signature"
EVENT_HEADER = "X-Portal-Event"
DELIVERY_HEADER = "X-Portal-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, too old, or does not match the body."""


def _digest(secret, timestamp, body):
    if isinstance(body, str):
        body = body.encode("utf-8")
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret, body, timestamp=None):
    """The `X-Portal-Signature` value for `body` (bytes) sent at `timestamp` (default: now).

    Args:
        secret: The endpoint's secret.
        body: The exact bytes of the request body.
        timestamp: Unix seconds; now when omitted.

    Returns:
        The header value, `t=<timestamp>,v1=<hex digest>`.
    """
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret, header, body, tolerance=DEFAULT_TOLERANCE_SECONDS, now=None):
    """Check a received `X-Portal-Signature` header against the raw request body.

    Args:
        secret: The endpoint's secret (shown once when the endpoint was created).
        header: The `X-Portal-Signature` header value.
        body: The raw request body, bytes as received (not re-serialised JSON).
        tolerance: Largest accepted difference in seconds between the signed timestamp and now.
        now: Unix seconds to compare with; the clock when omitted.

    Returns:
        The signed timestamp (int) when the signature is valid.

    Raises:
        SignatureError: The header is malformed, the timestamp is outside the tolerance, or no
            `v1` signature matches (compared in constant time).
    """
    if not header:
        raise SignatureError("no signature header")
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise SignatureError("malformed signature header")
    timestamp = int(timestamp)
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance")
    expected = _digest(secret, timestamp, body)
    # Every candidate is compared, so the time taken does not tell which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8"))
    if not matched:
        raise SignatureError("signature does not match")
    return timestamp
