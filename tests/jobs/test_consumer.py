"""The live feed: authentication, origin and owner checks, snapshot first, then events."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token

from jobs.choices import EventKind
from jobs.events import job_event_record
from portal.asgi import application
from tests.factories import TrainingJobFactory, UserFactory

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


def test_owner_gets_snapshot_then_events():
    job = TrainingJobFactory()
    token = Token.objects.create(user=job.owner).key

    async def scenario():
        communicator, connected, _ = await _connect(f"/ws/jobs/{job.pk}/", _headers(token))
        assert connected
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["type"] == "snapshot"
        assert snapshot["job"]["id"] == job.pk and snapshot["job"]["status"] == "queued"
        from channels.db import database_sync_to_async

        await database_sync_to_async(job_event_record)(job=job, kind=EventKind.LOG, payload={"lines": ["hello"]})
        event = await communicator.receive_json_from(timeout=5)
        assert event["type"] == "event" and event["kind"] == "log" and event["payload"]["lines"] == ["hello"]
        await communicator.send_json_to({"type": "resync"})
        again = await communicator.receive_json_from(timeout=5)
        assert again["type"] == "snapshot"
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_other_user_is_refused_like_a_missing_job():
    job = TrainingJobFactory()
    stranger = Token.objects.create(user=UserFactory(username="mallory")).key

    async def scenario():
        communicator, connected, code = await _connect(f"/ws/jobs/{job.pk}/", _headers(stranger))
        assert not connected and code == 4404
        communicator, connected, code = await _connect("/ws/jobs/999999/", _headers(stranger))
        assert not connected and code == 4404

    async_to_sync(scenario)()


def test_anonymous_and_bad_token_are_refused():
    job = TrainingJobFactory()

    async def scenario():
        _, connected, code = await _connect(f"/ws/jobs/{job.pk}/", _headers())
        assert not connected and code == 4401
        _, connected, code = await _connect(f"/ws/jobs/{job.pk}/", _headers("not-a-token"))
        assert not connected and code == 4401

    async_to_sync(scenario)()


def test_foreign_origin_is_refused():
    job = TrainingJobFactory()
    token = Token.objects.create(user=job.owner).key

    async def scenario():
        _, connected, _ = await _connect(f"/ws/jobs/{job.pk}/", _headers(token, origin="http://evil.example"))
        assert not connected

    async_to_sync(scenario)()
