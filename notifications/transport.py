"""The HTTP side of a webhook delivery: one POST, no redirects, a bounded read of the answer."""

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

RESPONSE_EXCERPT_BYTES = 2048
USER_AGENT = "VisionModelPortal-Webhooks/1"


@dataclass(frozen=True)
class PostOutcome:
    """What one attempt got: a status code and the start of the body, or an error."""

    status_code: int | None
    body_excerpt: str
    error: str
    duration_ms: int

    @property
    def succeeded(self):
        return self.status_code is not None and 200 <= self.status_code < 300


class AddressRefused(Exception):
    """The URL's host resolves to an address webhooks may not reach."""


def address_is_private(address):
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def host_check_public(url):
    """Refuse a host that resolves to a loopback, private, link-local or reserved address.

    Every address the name resolves to is checked. The HTTP client resolves the name again, so a
    DNS server that answers differently the second time is not stopped here: an egress proxy or
    firewall is the complete answer (docs/notifications.md).
    """
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"cannot resolve {parts.hostname}: {exc}") from exc
    for info in infos:
        address = info[4][0].split("%", 1)[0]  # drop an IPv6 zone index
        if address_is_private(address):
            raise AddressRefused(f"{parts.hostname} resolves to a private address ({address})")


def webhook_post(*, url, body, headers, timeout, allow_private):
    """POST `body` to `url` once. Never raises for network trouble: the outcome says what happened."""
    started = time.monotonic()

    def outcome(status_code=None, excerpt="", error=""):
        return PostOutcome(status_code, excerpt, error, int((time.monotonic() - started) * 1000))

    if not allow_private:
        try:
            host_check_public(url)
        except AddressRefused as exc:
            return outcome(error=str(exc))
    try:
        response = requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        )
    except requests.RequestException as exc:
        return outcome(error=f"{type(exc).__name__}: {exc}"[:2000])
    with response:
        try:
            raw = response.raw.read(RESPONSE_EXCERPT_BYTES, decode_content=True) or b""
        except Exception as exc:  # a body cut off mid-read still leaves the status code
            raw = f"(could not read the response body: {exc})".encode()
    try:
        excerpt = raw.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        excerpt = raw.decode("utf-8", errors="replace")
    error = ""
    if response.is_redirect:
        error = f"redirected to {response.headers.get('Location', '?')}; redirects are not followed"
    elif not 200 <= response.status_code < 300:
        error = f"HTTP {response.status_code}"
    return outcome(response.status_code, excerpt, error)
