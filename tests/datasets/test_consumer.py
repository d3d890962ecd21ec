"""The ingest live feed: authentication, origin and owner checks, snapshot first, then progress and the outcome."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from datasets import services
from datasets.choices import DatasetStatus
from datasets.events import dataset_event_broadcast
from portal.asgi import application
from tests import datagen
from tests.factories import DatasetFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(token=None, origin="http://localhost"):
    headers = [(b"origin", origin.encode()), (b"host", b"localhost")]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    return headers


async def _connect(path, headers):
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def test_owner_gets_a_snapshot_then_progress_then_the_outcome(media_root, settings, upload):
    settings.DATASET_PROGRESS_INTERVAL_SECONDS = 0
    owner = UserFactory(username="olive")
    token = Token.objects.create(user=owner).key
    dataset, _ = services.dataset_create(owner=owner, name="shapes", file=upload(datagen.detection_zip(train=4, val=2)))

    async def scenario():
        communicator, connected, _ = await _connect(f"/ws/datasets/{dataset.pk}/", _headers(token))
        assert connected
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot"
        assert snapshot["dataset"]["id"] == dataset.pk
        assert (snapshot["dataset"]["status"], snapshot["dataset"]["stage"]) == ("validating", "queued")
        await database_sync_to_async(services.dataset_ingest)(dataset_id=dataset.pk)
        messages = []
        while not messages or messages[-1]["kind"] == "progress":
            messages.append(await communicator.receive_json_from(timeout=5))
        stages = [m["payload"]["stage"] for m in messages if m["kind"] == "progress"]
        assert stages[0] == "extracting" and "validating" in stages and "previews" in stages
        assert messages[-1] == {
            "type": "event",
            "kind": "ready",
            "payload": {
                "status": "ready",
                "task": "detect",
                "num_images": 6,
                "classes": ["square", "disc"],
                "errors_count": 0,
                "warnings_count": 0,
            },
        }
        await communicator.send_json_to({"type": "resync"})
        again = await communicator.receive_json_from(timeout=5)
        assert again["dataset"]["status"] == DatasetStatus.READY and again["dataset"]["progress"] == 100.0
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_another_user_is_refused_like_a_missing_data_set(media_root):
    dataset = DatasetFactory()
    stranger = Token.objects.create(user=UserFactory(username="mallory")).key

    async def scenario():
        _, connected, code = await _connect(f"/ws/datasets/{dataset.pk}/", _headers(stranger))
        assert not connected and code == 4404
        _, connected, code = await _connect("/ws/datasets/999999/", _headers(stranger))
        assert not connected and code == 4404

    async_to_sync(scenario)()


def test_staff_may_watch_any_data_set(media_root):
    dataset = DatasetFactory()
    staff = Token.objects.create(user=UserFactory(username="stella", is_staff=True)).key

    async def scenario():
        communicator, connected, _ = await _connect(f"/ws/datasets/{dataset.pk}/", _headers(staff))
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["dataset"]["id"] == dataset.pk
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_anonymous_and_bad_tokens_are_refused(media_root):
    dataset = DatasetFactory()

    async def scenario():
        _, connected, code = await _connect(f"/ws/datasets/{dataset.pk}/", _headers())
        assert not connected and code == 4401
        _, connected, code = await _connect(f"/ws/datasets/{dataset.pk}/", _headers("not-a-token"))
        assert not connected and code == 4401

    async_to_sync(scenario)()


def test_a_foreign_origin_is_refused(media_root):
    dataset = DatasetFactory()
    token = Token.objects.create(user=dataset.owner).key

    async def scenario():
        _, connected, _ = await _connect(f"/ws/datasets/{dataset.pk}/", _headers(token, origin="http://evil.example"))
        assert not connected

    async_to_sync(scenario)()


def test_a_refused_client_does_not_stay_in_the_group(media_root):
    dataset = DatasetFactory()
    stranger = Token.objects.create(user=UserFactory(username="mallory")).key

    async def scenario():
        communicator, connected, _ = await _connect(f"/ws/datasets/{dataset.pk}/", _headers(stranger))
        assert not connected
        await database_sync_to_async(dataset_event_broadcast)(dataset_id=dataset.pk, kind="progress", payload={})
        assert await communicator.receive_nothing(timeout=0.2)

    async_to_sync(scenario)()
