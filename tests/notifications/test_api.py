"""The webhooks and notifications API: owner scoping, the secret shown once, ping, the log, redeliver."""

import pytest
from django.utils import timezone

from notifications.choices import DeliveryStatus
from notifications.models import Notification, WebhookDelivery, WebhookEndpoint
from notifications.signing import verify
from notifications.tasks import webhook_delivery_send
from tests.notifications.conftest import enqueued_ids
from tests.notifications.factories import NotificationFactory, WebhookDeliveryFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db

WEBHOOKS = "/api/v1/webhooks/"


def _create(client, **fields):
    body = {"url": "https://hooks.example.com/portal", "event_types": ["model_version.approved"], **fields}
    return client.post(WEBHOOKS, body, format="json")


def test_the_secret_is_in_the_create_response_only(user, api):
    client = api(user)

    response = _create(client, description="CI")

    assert response.status_code == 201, response.content
    created = response.json()
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert created["secret"] == endpoint.secret and created["secret"].startswith("whsec_")
    assert len(created["secret"]) > 40 and endpoint.owner == user
    assert created["event_types"] == ["model_version.approved"] and created["is_active"] is True
    for response in (
        client.get(WEBHOOKS),
        client.get(f"{WEBHOOKS}{endpoint.pk}/"),
        client.patch(f"{WEBHOOKS}{endpoint.pk}/", {"description": "CI pipeline"}, format="json"),
        client.put(
            f"{WEBHOOKS}{endpoint.pk}/",
            {"url": "https://hooks.example.com/v2", "event_types": ["*"], "is_active": True},
            format="json",
        ),
    ):
        assert response.status_code == 200, response.content
        assert endpoint.secret not in response.content.decode()
        assert "secret" not in (response.json()["results"][0] if "results" in response.json() else response.json())
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types, endpoint.description) == (
        "https://hooks.example.com/v2",
        ["*"],
        "CI pipeline",
    )


def test_a_client_cannot_choose_the_secret(user, api):
    response = _create(api(user), secret="whsec_mine")

    assert response.status_code == 201
    assert WebhookEndpoint.objects.get().secret != "whsec_mine"


def test_rotate_secret_shows_the_new_one_once(user, api):
    endpoint = WebhookEndpointFactory(owner=user)
    old = endpoint.secret

    response = api(user).post(f"{WEBHOOKS}{endpoint.pk}/rotate-secret/")

    endpoint.refresh_from_db()
    assert response.status_code == 200 and response.json()["secret"] == endpoint.secret != old


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/x", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("https://user:pw@hooks.example.com/x", "Credentials"),
        ("https://token@hooks.example.com/x", "Credentials"),
        ("https:///path-only", "needs a host"),
        ("https://hooks.example.com:99999/x", "port"),
        ("https://hooks.example.com/a b", "spaces"),
        ("not a url", "spaces"),
    ],
)
def test_bad_urls_are_refused(user, api, url, message):
    response = _create(api(user), url=url)

    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"] and "url" in error["fields"]
    assert not WebhookEndpoint.objects.exists()


def test_private_literals_are_refused_when_not_allowed(user, api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    client = api(user)

    for url in (
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
    ):
        assert _create(client, url=url).status_code == 400, url
    assert _create(client, url="https://hooks.example.com/x").status_code == 201

    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    assert _create(client, url="http://hooks:8080/portal").status_code == 201, "a single-label host is fine"


@pytest.mark.parametrize("event_types", [[], ["model_version.exploded"], ["ping"], "model_version.approved"])
def test_event_types_come_from_the_catalogue(user, api, event_types):
    response = _create(api(user), event_types=event_types)

    assert response.status_code == 400 and "event_types" in response.json()["error"]["fields"]


def test_endpoints_and_deliveries_are_owner_scoped(user, other_user, api):
    mine = WebhookEndpointFactory(owner=user)
    theirs = WebhookEndpointFactory(owner=other_user)
    my_delivery = WebhookDeliveryFactory(endpoint=mine, status=DeliveryStatus.FAILED)
    their_delivery = WebhookDeliveryFactory(endpoint=theirs, status=DeliveryStatus.FAILED)
    client = api(user)

    assert [row["id"] for row in client.get(WEBHOOKS).json()["results"]] == [mine.pk]
    assert [row["id"] for row in client.get("/api/v1/webhook-deliveries/").json()["results"]] == [my_delivery.pk]
    for method, url in [
        ("get", f"{WEBHOOKS}{theirs.pk}/"),
        ("patch", f"{WEBHOOKS}{theirs.pk}/"),
        ("delete", f"{WEBHOOKS}{theirs.pk}/"),
        ("get", f"{WEBHOOKS}{theirs.pk}/deliveries/"),
        ("post", f"{WEBHOOKS}{theirs.pk}/ping/"),
        ("post", f"{WEBHOOKS}{theirs.pk}/rotate-secret/"),
        ("get", f"/api/v1/webhook-deliveries/{their_delivery.pk}/"),
        ("post", f"/api/v1/webhook-deliveries/{their_delivery.pk}/redeliver/"),
    ]:
        assert getattr(client, method)(url, {}, format="json").status_code == 404, (method, url)
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()
    assert WebhookDelivery.objects.count() == 2


def test_staff_too_see_only_their_own_endpoints(user, staff_user, api):
    WebhookEndpointFactory(owner=user)

    assert api(staff_user).get(WEBHOOKS).json()["count"] == 0


def test_anonymous_requests_are_refused(api):
    for url in (WEBHOOKS, "/api/v1/webhook-deliveries/", "/api/v1/notifications/"):
        assert api(None).get(url).status_code in (401, 403)


def test_ping_delivers_a_signed_ping(user, api, receiver, enqueued):
    endpoint = WebhookEndpointFactory(owner=user, url=receiver.url, event_types=["job.failed"])
    client = api(user)

    response = client.post(f"{WEBHOOKS}{endpoint.pk}/ping/")

    assert response.status_code == 202
    delivery = response.json()
    assert delivery["event_type"] == "ping" and delivery["status"] == "pending"
    webhook_delivery_send(delivery["id"])
    (request,) = receiver.requests
    assert request["headers"]["X-Portal-Event"] == "ping"
    assert verify(endpoint.secret, request["headers"]["X-Portal-Signature"], request["body"])
    log = client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/").json()
    assert log["count"] == 1 and log["results"][0]["status"] == "succeeded"
    assert log["results"][0]["last_status_code"] == 200 and log["results"][0]["attempts"] == 1


def test_ping_of_an_inactive_endpoint_is_a_conflict(user, api):
    endpoint = WebhookEndpointFactory(owner=user, is_active=False)

    response = api(user).post(f"{WEBHOOKS}{endpoint.pk}/ping/")

    assert response.status_code == 409 and response.json()["error"]["code"] == "endpoint_inactive"


def test_the_delivery_log_is_paginated_and_filtered(user, api):
    endpoint = WebhookEndpointFactory(owner=user)
    WebhookDeliveryFactory.create_batch(55, endpoint=endpoint)
    WebhookDeliveryFactory.create_batch(2, endpoint=endpoint, status=DeliveryStatus.FAILED)
    WebhookDeliveryFactory(endpoint=WebhookEndpointFactory(owner=user))
    client = api(user)

    first = client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/").json()
    assert first["count"] == 57 and len(first["results"]) == 50 and first["next"]
    assert len(client.get(first["next"]).json()["results"]) == 7
    failed = client.get(f"{WEBHOOKS}{endpoint.pk}/deliveries/?status=failed").json()
    assert failed["count"] == 2
    assert client.get("/api/v1/webhook-deliveries/?status=failed").json()["count"] == 2


def test_redeliver_sends_the_same_event_as_a_new_delivery(user, api, enqueued, django_capture_on_commit_callbacks):
    failed = WebhookDeliveryFactory(
        endpoint=WebhookEndpointFactory(owner=user), status=DeliveryStatus.FAILED, attempts=6, next_attempt_at=None
    )
    client = api(user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/webhook-deliveries/{failed.pk}/redeliver/")

    assert response.status_code == 202
    again = response.json()
    assert again["id"] != failed.pk and again["redelivery_of"] == failed.pk
    assert (again["event_id"], again["payload"]) == (str(failed.event_id), failed.payload)
    assert (again["status"], again["attempts"]) == ("pending", 0)
    assert enqueued_ids(enqueued) == [again["id"]]
    failed.refresh_from_db()
    assert failed.status == "failed", "the original stays in the log as it was"


def test_redeliver_of_a_pending_delivery_is_a_conflict(user, api):
    pending = WebhookDeliveryFactory(endpoint=WebhookEndpointFactory(owner=user))

    assert api(user).post(f"/api/v1/webhook-deliveries/{pending.pk}/redeliver/").status_code == 409


def test_delete_removes_the_endpoint_and_its_log(user, api):
    endpoint = WebhookEndpointFactory(owner=user)
    WebhookDeliveryFactory(endpoint=endpoint)

    assert api(user).delete(f"{WEBHOOKS}{endpoint.pk}/").status_code == 204
    assert not WebhookEndpoint.objects.exists() and not WebhookDelivery.objects.exists()


def test_notifications_are_own_and_filter_unread(user, other_user, api):
    read = NotificationFactory(user=user, read_at=timezone.now())
    unread = NotificationFactory(user=user)
    theirs = NotificationFactory(user=other_user)
    client = api(user)

    assert {row["id"] for row in client.get("/api/v1/notifications/").json()["results"]} == {read.pk, unread.pk}
    assert [row["id"] for row in client.get("/api/v1/notifications/?unread=true").json()["results"]] == [unread.pk]
    assert [row["id"] for row in client.get("/api/v1/notifications/?unread=false").json()["results"]] == [read.pk]
    assert client.get(f"/api/v1/notifications/{theirs.pk}/").status_code == 404
    assert client.post(f"/api/v1/notifications/{theirs.pk}/read/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_read_and_read_all(user, other_user, api):
    first, second, third = NotificationFactory.create_batch(3, user=user)
    theirs = NotificationFactory(user=other_user)
    client = api(user)

    response = client.post(f"/api/v1/notifications/{first.pk}/read/")
    assert response.status_code == 200 and response.json()["read_at"]
    read_at = response.json()["read_at"]
    assert client.post(f"/api/v1/notifications/{first.pk}/read/").json()["read_at"] == read_at, "kept the first time"

    response = client.post("/api/v1/notifications/read-all/")
    assert response.status_code == 200 and response.json() == {"updated": 2}
    assert not Notification.objects.filter(user=user, read_at__isnull=True).exists()
    assert Notification.objects.get(pk=theirs.pk).read_at is None
