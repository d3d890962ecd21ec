"""The predict fast path in front of Django: same answers and errors as the API, answered without the middleware
stack, predictions side by side, usage recorded after the answer."""

import asyncio
import json
import threading
import time
from http.server import ThreadingHTTPServer

import pytest
import requests
from asgiref.testing import ApplicationCommunicator
from rest_framework.authtoken.models import Token

from serving.choices import DeploymentStatus
from serving.models import DeploymentUsage
from tests import datagen
from tests.factories import DeploymentFactory
from trainers.ultralytics.serve import InFlight, make_handler

pytestmark = pytest.mark.django_db(transaction=True)


class SleepyPredictor:
    names = {0: "square"}

    def __init__(self, seconds):
        self.seconds = seconds

    def predict(self, image, **options):
        time.sleep(self.seconds)
        box = {"class_id": 0, "class_name": "square", "confidence": 0.9, "bbox": [1.0, 2.0, 30.0, 40.0]}
        return {"predictions": [box], "inference_time_ms": self.seconds * 1000, "options": options}


@pytest.fixture
def model_server():
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), make_handler(SleepyPredictor(0.3), "ab" * 32, "secret", [], InFlight())
    )
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def deployment(user, model_server):
    return DeploymentFactory(owner=user, status=DeploymentStatus.ACTIVE, server_url=model_server)


def multipart(fields):
    prepared = requests.Request("POST", "http://127.0.0.1/", files=fields).prepare()
    return prepared.body, prepared.headers["Content-Type"]


async def call(path, *, token=None, fields=None, host=b"127.0.0.1"):
    from portal.asgi import application

    body, content_type = multipart(fields or {"image": ("i.jpg", datagen.sample_image_bytes(), "image/jpeg")})
    headers = [(b"host", host), (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if token:
        headers.append((b"authorization", f"Token {token}".encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "scheme": "http",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "http_version": "1.1",
    }
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(20)
    chunks = []
    while True:
        message = await communicator.receive_output(20)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await communicator.wait(20)  # the deferred usage write has run
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(chunks)
    is_json = headers.get("content-type", "").startswith("application/json")
    return start["status"], headers, json.loads(body) if is_json else body


def token_of(user):
    return Token.objects.get_or_create(user=user)[0].key


def test_a_token_request_is_answered_without_the_middleware_and_counted(user, deployment):
    status, headers, body = asyncio.run(call(f"/api/v1/deployments/{deployment.pk}/predict/", token=token_of(user)))

    assert status == 200
    assert body["predictions"][0]["class_name"] == "square"
    assert body["deployment"] == deployment.pk and body["model_version"] == deployment.model_version_id
    assert "allow" not in headers and "vary" not in headers  # DRF's view adds both: it was not involved
    assert headers["x-content-type-options"] == "nosniff"
    usage = DeploymentUsage.objects.get(deployment=deployment)
    assert usage.request_count == 1 and usage.error_count == 0


def test_options_reach_the_model_server_through_the_fast_path(user, deployment):
    fields = {
        "image": ("i.jpg", datagen.sample_image_bytes(), "image/jpeg"),
        "conf": (None, "0.5"),
        "classes": (None, "0"),
    }
    status, _, body = asyncio.run(
        call(f"/api/v1/deployments/{deployment.pk}/predict/", token=token_of(user), fields=fields)
    )

    assert status == 200
    assert body["options"]["conf"] == 0.5 and body["options"]["classes"] == [0]


def test_predictions_run_side_by_side_not_one_after_another(user, deployment):
    token = token_of(user)

    async def both():
        path = f"/api/v1/deployments/{deployment.pk}/predict/"
        return await asyncio.gather(call(path, token=token), call(path, token=token))

    started = time.perf_counter()
    answers = asyncio.run(both())
    elapsed = time.perf_counter() - started

    assert [status for status, _, _ in answers] == [200, 200]
    # The model server answers each in 0.3 s and serves requests concurrently; Django's sync views
    # share one thread, so through them the two would take at least 0.6 s.
    assert elapsed < 0.55, elapsed


@pytest.mark.parametrize(
    ("token", "path_for", "status", "code"),
    [
        ("not-a-token", lambda d: f"/api/v1/deployments/{d.pk}/predict/", 401, "authentication_failed"),
        ("theirs", lambda d: f"/api/v1/deployments/{d.pk}/predict/", 404, "not_found"),
        ("mine", lambda d: "/api/v1/deployments/999999/predict/", 404, "not_found"),
    ],
)
def test_what_the_fast_path_does_not_answer_gets_the_apis_own_error(
    user, other_user, deployment, token, path_for, status, code
):
    key = {"mine": token_of(user), "theirs": token_of(other_user)}.get(token, token)

    answer_status, headers, body = asyncio.run(call(path_for(deployment), token=key))

    assert answer_status == status
    assert body["error"]["code"] == code


def test_a_refused_form_gets_the_serializers_field_errors(user, deployment):
    fields = {"image": ("i.jpg", datagen.sample_image_bytes(), "image/jpeg"), "conf": (None, "7")}

    status, _, body = asyncio.run(
        call(f"/api/v1/deployments/{deployment.pk}/predict/", token=token_of(user), fields=fields)
    )

    assert status == 400
    assert "conf" in body["error"]["fields"]


def test_not_an_image_is_refused_and_counted_as_nothing(user, deployment):
    fields = {"image": ("i.jpg", b"<html>not an image</html>", "image/jpeg")}

    status, _, body = asyncio.run(
        call(f"/api/v1/deployments/{deployment.pk}/predict/", token=token_of(user), fields=fields)
    )

    assert status == 400 and body["error"]["code"] == "not_an_image"


def test_a_stopped_deployment_answers_503_with_retry_after(user, deployment):
    deployment.status = DeploymentStatus.STOPPED
    deployment.save(update_fields=["status"])

    status, headers, body = asyncio.run(call(f"/api/v1/deployments/{deployment.pk}/predict/", token=token_of(user)))

    assert status == 503 and body["error"]["code"] == "unavailable"
    assert int(headers["retry-after"]) > 0


def test_an_unknown_host_is_refused_as_django_refuses_it(user, deployment):
    status, _, _ = asyncio.run(
        call(f"/api/v1/deployments/{deployment.pk}/predict/", token=token_of(user), host=b"evil.example")
    )

    assert status == 400


def test_the_endpoint_path_serves_the_current_deployment(user, deployment):
    endpoint = endpoint_serving(deployment)

    status, _, body = asyncio.run(call(f"/api/v1/endpoints/{endpoint.slug}/predict/", token=token_of(user)))

    assert status == 200 and body["deployment"] == deployment.pk


def endpoint_serving(deployment):
    from serving.models import Endpoint

    endpoint, _ = Endpoint.objects.get_or_create(
        registered_model=deployment.model_version.registered_model,
        defaults={"owner": deployment.owner, "slug": "fast-path-model"},
    )
    endpoint.current_deployment = deployment
    endpoint.save()
    return endpoint
