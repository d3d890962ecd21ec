"""The signature scheme integrators verify: HMAC-SHA256 over `<timestamp>.<body>`."""

import hashlib
import hmac
import time

import pytest

from notifications.signing import SignatureError, sign, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"6d1f","event":"model_version.approved","version":{"id":7}}'


def test_a_fresh_signature_of_the_body_verifies():
    header = sign(SECRET, BODY)

    assert verify(SECRET, header, BODY) == int(header.split(",")[0].removeprefix("t="))


def test_the_header_is_the_documented_hmac():
    header = sign(SECRET, BODY, timestamp=1_700_000_000)
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()

    assert header == f"t=1700000000,v1={expected}"


def test_a_tampered_body_is_refused():
    header = sign(SECRET, BODY)

    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, header, BODY.replace(b"7", b"8"))


def test_a_wrong_secret_is_refused():
    header = sign(SECRET, BODY)

    with pytest.raises(SignatureError, match="does not match"):
        verify("whsec_another-secret", header, BODY)


def test_an_old_timestamp_is_refused_even_with_a_valid_signature():
    header = sign(SECRET, BODY, timestamp=int(time.time()) - 301)

    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, header, BODY)
    assert verify(SECRET, header, BODY, tolerance=600)


def test_a_timestamp_from_the_future_is_refused():
    header = sign(SECRET, BODY, timestamp=int(time.time()) + 3600)

    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, header, BODY)


def test_a_signature_moved_to_another_timestamp_is_refused():
    now = int(time.time())
    digest = sign(SECRET, BODY, timestamp=now - 10).split("v1=")[1]

    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, f"t={now},v1={digest}", BODY)


@pytest.mark.parametrize(
    "header", ["", "v1=abc", "t=notanumber,v1=abc", "t=1700000000", "garbage", "t=1700000000,v1=é"]
)
def test_malformed_headers_are_refused(header):
    with pytest.raises(SignatureError):
        verify(SECRET, header, BODY, now=1_700_000_000)


def test_any_matching_v1_is_accepted():
    now = int(time.time())
    good = sign(SECRET, BODY, timestamp=now).split("v1=")[1]

    assert verify(SECRET, f"t={now},v1={'0' * 64},v1={good}", BODY) == now
