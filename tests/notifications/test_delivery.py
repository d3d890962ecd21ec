"""Deliveries to a real HTTP server: signed headers, success, retries with backoff, give-up, the sweep."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import services
from notifications.choices import DeliveryStatus
from notifications.models import WebhookDelivery
from notifications.signing import verify
from notifications.tasks import webhook_deliveries_sweep, webhook_delivery_send
from tests.factories import UserFactory
from tests.notifications.conftest import enqueued_ids
from tests.notifications.factories import WebhookDeliveryFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db


def _emit(owner, event_type="model_version.approved", payload=None):
    return services.webhook_event_emit(owner=owner, event_type=event_type, payload=payload or {"version": {"id": 7}})


def _make_due(delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_emit_queues_one_delivery_per_matching_active_endpoint_after_commit(
    user, enqueued, django_capture_on_commit_callbacks
):
    everything = WebhookEndpointFactory(owner=user, event_types=["*"])
    approvals = WebhookEndpointFactory(owner=user, event_types=["model_version.approved"])
    WebhookEndpointFactory(owner=user, event_types=["job.failed"])
    WebhookEndpointFactory(owner=user, event_types=["*"], is_active=False)
    WebhookEndpointFactory(owner=UserFactory(username="carol"), event_types=["*"])

    with django_capture_on_commit_callbacks() as callbacks:
        deliveries = _emit(user)
        assert not enqueued.called, "nothing is sent before the transaction commits"
    for callback in callbacks:
        callback()

    assert {d.endpoint for d in deliveries} == {everything, approvals}
    assert len({d.event_id for d in deliveries}) == 1, "both endpoints get the same event"
    assert all(d.status == DeliveryStatus.PENDING and d.next_attempt_at for d in deliveries)
    assert sorted(enqueued_ids(enqueued)) == sorted(d.pk for d in deliveries)
    assert {call.kwargs["queue"] for call in enqueued.call_args_list} == {"default"}


def test_a_delivery_is_posted_signed_and_marked_succeeded(user, receiver, enqueued):
    endpoint = WebhookEndpointFactory(owner=user, url=receiver.url)
    (delivery,) = _emit(user, payload={"version": {"id": 7, "metrics": {"mAP50": 0.91}}})

    assert webhook_delivery_send(delivery.pk) == DeliveryStatus.SUCCEEDED

    (request,) = receiver.requests
    headers = request["headers"]
    assert request["path"] == "/hooks/portal"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Portal-Event"] == "model_version.approved"
    assert headers["X-Portal-Delivery"] == str(delivery.uuid)
    assert verify(endpoint.secret, headers["X-Portal-Signature"], request["body"])
    body = json.loads(request["body"])
    assert body["id"] == str(delivery.event_id) and body["event"] == "model_version.approved"
    assert body["version"] == {"id": 7, "metrics": {"mAP50": 0.91}}
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)
    assert delivery.next_attempt_at is None and delivery.last_error == ""
    assert json.loads(delivery.response_body_excerpt) == {"received": 1}
    assert [entry["status_code"] for entry in delivery.attempt_log] == [200]
    assert not enqueued.called


def test_a_500_schedules_a_retry_with_backoff_then_the_retry_succeeds(user, receiver, enqueued):
    WebhookEndpointFactory(owner=user, url=receiver.url)
    (delivery,) = _emit(user)
    receiver.statuses = [500]
    before = timezone.now()

    assert webhook_delivery_send(delivery.pk) == DeliveryStatus.PENDING

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.last_error == "HTTP 500"
    assert before + timedelta(seconds=9) <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=11)
    (retry,) = enqueued.call_args_list
    assert retry.kwargs["args"] == [delivery.pk] and retry.kwargs["countdown"] == 10

    assert webhook_delivery_send(delivery.pk) is None, "not due yet: the early message does nothing"
    assert len(receiver.requests) == 1

    _make_due(delivery)
    assert webhook_delivery_send(delivery.pk) == DeliveryStatus.SUCCEEDED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    assert [entry["status_code"] for entry in delivery.attempt_log] == [500, 200]
    assert len(receiver.requests) == 2
    first, second = (r["headers"]["X-Portal-Delivery"] for r in receiver.requests)
    assert first == second == str(delivery.uuid), "a retry is the same delivery"


def test_backoff_grows_threefold_and_gives_up_after_the_last_attempt(user, receiver, enqueued, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 4
    WebhookEndpointFactory(owner=user, url=receiver.url)
    (delivery,) = _emit(user)
    receiver.statuses = [503] * 4

    for _ in range(4):
        _make_due(delivery)
        webhook_delivery_send(delivery.pk)

    delivery.refresh_from_db()
    assert [call.kwargs["countdown"] for call in enqueued.call_args_list] == [10, 30, 90]
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 4, None)
    assert delivery.last_status_code == 503 and len(delivery.attempt_log) == 4
    _make_due(delivery)
    assert webhook_delivery_send(delivery.pk) is None
    assert len(receiver.requests) == 4


def test_unreachable_endpoint_and_redirect_are_failures(user, receiver, enqueued):
    closed = WebhookEndpointFactory(owner=user, url="http://127.0.0.1:9/nothing-listens", event_types=["job.failed"])
    redirecting = WebhookEndpointFactory(owner=user, url=receiver.url, event_types=["job.failed"])
    receiver.statuses = [302]
    deliveries = {d.endpoint_id: d for d in _emit(user, event_type="job.failed")}

    webhook_delivery_send(deliveries[closed.pk].pk)
    webhook_delivery_send(deliveries[redirecting.pk].pk)

    refused = WebhookDelivery.objects.get(pk=deliveries[closed.pk].pk)
    assert refused.status == "pending" and refused.last_status_code is None
    assert "ConnectionError" in refused.last_error
    redirected = WebhookDelivery.objects.get(pk=deliveries[redirecting.pk].pk)
    assert redirected.status == "pending" and redirected.last_status_code == 302
    assert "not followed" in redirected.last_error
    assert len(receiver.requests) == 1, "the redirect was not followed"


def test_private_addresses_are_refused_at_delivery_time_when_not_allowed(user, receiver, enqueued, settings):
    WebhookEndpointFactory(owner=user, url=receiver.url.replace("127.0.0.1", "localhost"))
    (delivery,) = _emit(user)
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False

    webhook_delivery_send(delivery.pk)

    delivery.refresh_from_db()
    assert "private address" in delivery.last_error and delivery.last_status_code is None
    assert receiver.requests == []


def test_an_endpoint_deactivated_after_the_event_gets_nothing(user, receiver, enqueued):
    endpoint = WebhookEndpointFactory(owner=user, url=receiver.url)
    (delivery,) = _emit(user)
    services.webhook_endpoint_update(endpoint=endpoint, is_active=False)

    webhook_delivery_send(delivery.pk)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("failed", "the endpoint is inactive")
    assert receiver.requests == []


def test_a_duplicate_message_sends_once(user, receiver, enqueued):
    WebhookEndpointFactory(owner=user, url=receiver.url)
    (delivery,) = _emit(user)

    webhook_delivery_send(delivery.pk)
    webhook_delivery_send(delivery.pk)

    assert len(receiver.requests) == 1


def test_the_sweep_re_enqueues_due_pending_deliveries_only(enqueued):
    long_ago = timezone.now() - timedelta(minutes=5)
    lost = WebhookDeliveryFactory(next_attempt_at=long_ago)
    retry_lost = WebhookDeliveryFactory(next_attempt_at=long_ago, attempts=2)
    WebhookDeliveryFactory(next_attempt_at=timezone.now() + timedelta(minutes=1))  # waiting for its backoff
    WebhookDeliveryFactory(next_attempt_at=timezone.now())  # its message is still on its way
    WebhookDeliveryFactory(next_attempt_at=long_ago, status=DeliveryStatus.SUCCEEDED)
    WebhookDeliveryFactory(next_attempt_at=long_ago, status=DeliveryStatus.FAILED)

    webhook_deliveries_sweep()

    assert sorted(enqueued_ids(enqueued)) == sorted([lost.pk, retry_lost.pk])


def test_the_sweep_delivers_what_a_lost_message_left_behind(user, receiver, enqueued):
    WebhookEndpointFactory(owner=user, url=receiver.url)
    (delivery,) = _emit(user)  # its on-commit message never reaches a worker
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=1))

    webhook_deliveries_sweep()
    for delivery_id in enqueued_ids(enqueued):
        webhook_delivery_send(delivery_id)

    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and len(receiver.requests) == 1


def test_the_sweep_fails_a_delivery_whose_last_attempt_never_reported(enqueued, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    stuck = WebhookDeliveryFactory(attempts=3, next_attempt_at=timezone.now() - timedelta(minutes=5))

    webhook_deliveries_sweep()

    stuck.refresh_from_db()
    assert stuck.status == "failed" and "never reported" in stuck.last_error
    assert not enqueued.called


def test_a_broker_outage_at_enqueue_loses_nothing(user, django_capture_on_commit_callbacks, monkeypatch):
    from notifications.tasks import webhook_delivery_send as task

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(task, "apply_async", broker_down)
    WebhookEndpointFactory(owner=user)

    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = _emit(user)

    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.next_attempt_at is not None
