"""Webhook endpoints, and deliveries that survive a lost broker message or a dead worker.

The database is the queue of record: every delivery is a row with `next_attempt_at`. A Celery
message (sent after commit, or with a countdown for a retry) is only a wake-up call; the sweep
started by beat re-sends those whose message was lost.
"""

import json
import logging
import secrets
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from notifications.choices import ALL_EVENTS, PING_EVENT, DeliveryStatus, WebhookEventType
from notifications.conf import notification_setting
from notifications.models import WebhookDelivery, WebhookEndpoint
from notifications.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from notifications.transport import PostOutcome, address_is_private, webhook_post
from portal.errors import ApplicationError, ConflictError

logger = logging.getLogger(__name__)

# A task message may arrive a little before `next_attempt_at` (clocks of web and worker differ).
CLOCK_GRACE = timedelta(seconds=2)
# The sweep leaves alone deliveries due less than this long ago: their message is still on its way.
SWEEP_GRACE = timedelta(seconds=30)
# How long a claimed attempt may run before the sweep presumes its worker dead (beyond the timeout).
ATTEMPT_LEASE_MARGIN = timedelta(seconds=30)
ATTEMPT_LOG_LIMIT = 20


def webhook_secret_generate():
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_url_check(url):
    """Refuse what a webhook URL must not be: another scheme, credentials, no host, a private literal."""
    url = (url or "").strip()
    problem = _url_problem(url)
    if problem:
        raise ApplicationError(problem, fields={"url": [problem]})
    return url


def _url_problem(url):
    if any(char.isspace() or ord(char) < 32 for char in url):
        return "A URL cannot contain spaces or control characters."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "Only http and https URLs are allowed."
    if parts.username is not None or parts.password is not None:
        return "Credentials in the URL are refused; the signature authenticates each request."
    if not parts.hostname:
        return "The URL needs a host."
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number in range
    except ValueError:
        return "The port is not valid."
    if not notification_setting("WEBHOOK_ALLOW_PRIVATE_ADDRESSES") and _is_private_literal(parts.hostname):
        return "Private, loopback and link-local addresses are not allowed on this server."
    return None


def _is_private_literal(hostname):
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return address_is_private(hostname)
    except ValueError:  # a name, checked when it is resolved at delivery time
        return False


def webhook_event_types_check(event_types):
    catalogue = set(WebhookEventType.values) | {ALL_EVENTS}
    if not isinstance(event_types, list) or not event_types:
        raise ApplicationError(
            "Subscribe to at least one event type.", fields={"event_types": ["Subscribe to at least one event type."]}
        )
    unknown = [value for value in event_types if not isinstance(value, str) or value not in catalogue]
    if unknown:
        message = f"Unknown event types: {', '.join(map(str, unknown))}."
        raise ApplicationError(message, fields={"event_types": [message]})
    return list(dict.fromkeys(event_types))


def webhook_endpoint_create(*, owner, url, event_types, description="", is_active=True):
    """A new endpoint with a server-generated secret (the caller shows it once)."""
    return WebhookEndpoint.objects.create(
        owner=owner,
        url=webhook_url_check(url),
        event_types=webhook_event_types_check(event_types),
        description=description,
        is_active=is_active,
        secret=webhook_secret_generate(),
    )


def webhook_endpoint_update(*, endpoint, **fields):
    allowed = {"url", "event_types", "description", "is_active"}
    if set(fields) - allowed:
        raise ValueError(f"cannot update {sorted(set(fields) - allowed)}")
    if "url" in fields:
        fields["url"] = webhook_url_check(fields["url"])
    if "event_types" in fields:
        fields["event_types"] = webhook_event_types_check(fields["event_types"])
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save(update_fields=[*fields, "updated_at"])
    return endpoint


def webhook_endpoint_rotate_secret(*, endpoint):
    """Replace the secret; deliveries signed from now on use the new one."""
    endpoint.secret = webhook_secret_generate()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


def webhook_endpoint_delete(*, endpoint):
    endpoint.delete()


def _event_document(event_type, event_id, payload):
    """The JSON body: the event's id and type first, then the caller's payload, JSON-normalised."""
    document = {"id": str(event_id), "event": event_type, "occurred_at": timezone.now()}
    document.update({key: value for key, value in payload.items() if key not in ("id", "event")})
    return json.loads(json.dumps(document, cls=DjangoJSONEncoder))


def _delivery_create(*, endpoint, event_type, event_id, document, redelivery_of=None):
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_type=event_type,
        event_id=event_id,
        payload=document,
        next_attempt_at=timezone.now(),
        redelivery_of=redelivery_of,
    )
    transaction.on_commit(lambda: webhook_delivery_enqueue(delivery_id=delivery.pk))
    return delivery


def webhook_event_emit(*, owner, event_type, payload):
    """Queue one delivery of an event to each of the owner's active endpoints that subscribe to it.

    The rows are written in the caller's transaction and the tasks sent after it commits, so an
    event is delivered exactly when the change it reports is committed.
    """
    if event_type not in WebhookEventType.values:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(owner=owner, is_active=True)
        if endpoint.subscribes_to(event_type)
    ]
    if not endpoints:
        return []
    event_id = uuid.uuid4()
    document = _event_document(event_type, event_id, payload)
    with transaction.atomic():
        return [
            _delivery_create(endpoint=endpoint, event_type=event_type, event_id=event_id, document=document)
            for endpoint in endpoints
        ]


def webhook_endpoint_ping(*, endpoint):
    """Send a `ping` event to one endpoint, whatever it subscribes to."""
    if not endpoint.is_active:
        raise ConflictError("The endpoint is inactive; activate it first.", code="endpoint_inactive")
    event_id = uuid.uuid4()
    document = _event_document(
        PING_EVENT,
        event_id,
        {"webhook": {"id": endpoint.pk, "url": endpoint.url, "event_types": endpoint.event_types}},
    )
    with transaction.atomic():
        return _delivery_create(endpoint=endpoint, event_type=PING_EVENT, event_id=event_id, document=document)


def webhook_delivery_redeliver(*, delivery):
    """Send a finished delivery again as a new delivery of the same event (same event id and payload)."""
    if delivery.status == DeliveryStatus.PENDING:
        raise ConflictError("This delivery is still pending; it is retried automatically.", code="delivery_pending")
    if not delivery.endpoint.is_active:
        raise ConflictError("The endpoint is inactive; activate it first.", code="endpoint_inactive")
    with transaction.atomic():
        return _delivery_create(
            endpoint=delivery.endpoint,
            event_type=delivery.event_type,
            event_id=delivery.event_id,
            document=delivery.payload,
            redelivery_of=delivery,
        )


def webhook_delivery_enqueue(*, delivery_id, countdown=None):
    """Wake a worker for this delivery; when the broker is unreachable the sweep will do it."""
    from notifications.tasks import webhook_delivery_send

    try:
        webhook_delivery_send.apply_async(args=[delivery_id], countdown=countdown, queue="default")
    except Exception:
        logger.warning("could not enqueue webhook delivery %s; the sweep will send it", delivery_id, exc_info=True)


def webhook_retry_delay(attempts):
    """Seconds to wait after the `attempts`-th failure: base, 3x base, 9x base, ... capped."""
    base = notification_setting("WEBHOOK_RETRY_BASE_SECONDS")
    return min(base * 3 ** (attempts - 1), notification_setting("WEBHOOK_RETRY_MAX_SECONDS"))


def webhook_delivery_attempt(*, delivery_id, now=None):
    """Make one attempt at a due delivery; returns the delivery, or None when there was nothing to do.

    The claim is a conditional update (pending, due, attempts left) that moves `next_attempt_at`
    past the attempt's timeout, so a duplicate message finds nothing to claim. No transaction is
    held while the request is in flight.
    """
    now = now or timezone.now()
    timeout = notification_setting("WEBHOOK_TIMEOUT_SECONDS")
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=now + CLOCK_GRACE,
        attempts__lt=notification_setting("WEBHOOK_MAX_ATTEMPTS"),
    ).update(
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=timeout) + ATTEMPT_LEASE_MARGIN,
        last_attempt_at=now,
        updated_at=now,
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        return _delivery_record(delivery, PostOutcome(None, "", "the endpoint is inactive", 0), final=True)
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    headers = {
        SIGNATURE_HEADER: sign(endpoint.secret, body, int(time.time())),
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.uuid),
    }
    outcome = webhook_post(
        url=endpoint.url,
        body=body,
        headers=headers,
        timeout=timeout,
        allow_private=notification_setting("WEBHOOK_ALLOW_PRIVATE_ADDRESSES"),
    )
    return _delivery_record(delivery, outcome)


def _delivery_record(delivery, outcome, *, final=False):
    """Store an attempt's outcome: succeeded, failed for good, or pending again with a backoff."""
    now = timezone.now()
    fields = {
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
        "last_duration_ms": outcome.duration_ms,
        "response_body_excerpt": outcome.body_excerpt,
        "attempt_log": [
            *delivery.attempt_log[-(ATTEMPT_LOG_LIMIT - 1) :],
            {
                "attempt": delivery.attempts,
                "at": delivery.last_attempt_at.isoformat(),
                "status_code": outcome.status_code,
                "error": outcome.error[:500],
                "duration_ms": outcome.duration_ms,
            },
        ],
        "updated_at": now,
    }
    delay = None
    if outcome.succeeded:
        fields.update(status=DeliveryStatus.SUCCEEDED, next_attempt_at=None)
    elif final or delivery.attempts >= notification_setting("WEBHOOK_MAX_ATTEMPTS"):
        fields.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        delay = webhook_retry_delay(delivery.attempts)
        fields.update(next_attempt_at=now + timedelta(seconds=delay))
    # Only the claim's holder writes: the attempt count proves this is still our attempt.
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.PENDING, attempts=delivery.attempts
    ).update(**fields)
    if updated and delay is not None:
        webhook_delivery_enqueue(delivery_id=delivery.pk, countdown=delay)
    return WebhookDelivery.objects.filter(pk=delivery.pk).first()  # None when its endpoint was deleted


def webhook_deliveries_sweep(*, now=None, limit=500):
    """Re-send deliveries whose message was lost, and fail those whose last attempt never reported.

    Returns the ids of the deliveries enqueued again.
    """
    now = now or timezone.now()
    max_attempts = notification_setting("WEBHOOK_MAX_ATTEMPTS")
    pending = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now - SWEEP_GRACE)
    abandoned = pending.filter(attempts__gte=max_attempts).update(
        status=DeliveryStatus.FAILED,
        next_attempt_at=None,
        last_error="the last attempt never reported back (its worker stopped)",
        updated_at=now,
    )
    if abandoned:
        logger.warning("%s webhook deliveries failed: their last attempt never reported back", abandoned)
    due = list(
        pending.filter(attempts__lt=max_attempts).order_by("next_attempt_at").values_list("pk", flat=True)[:limit]
    )
    for delivery_id in due:
        webhook_delivery_enqueue(delivery_id=delivery_id)
    return due
