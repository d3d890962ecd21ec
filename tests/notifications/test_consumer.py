"""The live notifications feed: authentication, unread ones first, then a review decision as it happens."""

import pytest
from asgiref.sync import async_to_sync
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from models_registry.choices import ReviewStatus
from models_registry.models import ModelVersion
from notifications.routing import websocket_urlpatterns
from notifications.services import registry_event_publish
from portal.ws_auth import TokenAuthMiddleware
from tests.factories import ModelVersionFactory, UserFactory
from tests.notifications.factories import NotificationFactory

pytestmark = pytest.mark.django_db(transaction=True)

# The stack portal/asgi.py puts in front of every WebSocket route.
application = AllowedHostsOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns))))


def _headers(token=None, origin="http://localhost"):
    headers = [(b"origin", origin.encode()), (b"host", b"localhost")]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    return headers


async def _connect(headers):
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def _reject(version, reviewer, reason):
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk).update(
            review_status=ReviewStatus.REJECTED, reviewer=reviewer, reviewed_at=timezone.now(), review_note=reason
        )
        registry_event_publish(version=version, kind="rejected", actor=reviewer, reason=reason)


def test_unread_first_then_a_rejection_live(mailoutbox):
    owner = UserFactory(username="olga", email="olga@example.com")
    reviewer = UserFactory(username="rita")
    version = ModelVersionFactory(registered_model__owner=owner, registered_model__name="pallets", number=2)
    older = NotificationFactory(user=owner, title="older")
    NotificationFactory(user=owner, title="already read", read_at=timezone.now())
    NotificationFactory(user=reviewer, title="not hers")
    token = Token.objects.create(user=owner).key

    async def scenario():
        communicator, connected, _ = await _connect(_headers(token))
        assert connected
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot" and snapshot["unread_count"] == 1
        assert [n["id"] for n in snapshot["notifications"]] == [older.pk]

        await database_sync_to_async(_reject)(version, reviewer, "too many false positives on pallets")

        live = await communicator.receive_json_from(timeout=5)
        assert live["type"] == "notification"
        assert live["notification"]["kind"] == "model_version.rejected"
        assert live["notification"]["title"] == "pallets v2 was rejected"
        assert live["notification"]["body"] == "too many false positives on pallets"
        assert live["notification"]["data"]["model_version"] == version.pk

        await communicator.send_json_to({"type": "resync"})
        again = await communicator.receive_json_from(timeout=5)
        assert again["unread_count"] == 2
        await communicator.disconnect()

    async_to_sync(scenario)()
    (email,) = mailoutbox
    assert email.to == ["olga@example.com"] and "too many false positives on pallets" in email.body


def test_another_users_notifications_do_not_reach_me():
    me = UserFactory(username="mia")
    someone = UserFactory(username="sam")
    token = Token.objects.create(user=me).key

    async def scenario():
        communicator, connected, _ = await _connect(_headers(token))
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["unread_count"] == 0
        from notifications.services import notification_create

        await database_sync_to_async(notification_create)(user=someone, kind="model_version.approved", title="x")
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_anonymous_and_bad_token_are_refused():
    async def scenario():
        _, connected, code = await _connect(_headers())
        assert not connected and code == 4401
        _, connected, code = await _connect(_headers("not-a-token"))
        assert not connected and code == 4401

    async_to_sync(scenario)()


def test_foreign_origin_is_refused():
    token = Token.objects.create(user=UserFactory(username="olga")).key

    async def scenario():
        _, connected, _ = await _connect(_headers(token, origin="http://evil.example"))
        assert not connected

    async_to_sync(scenario)()
