"""Predict options, annotated images, bad input, and per-deployment usage."""

import base64
import io
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.admin.sites import site
from django.utils import timezone
from PIL import Image

from serving import selectors, services
from serving.admin import DeploymentAdmin
from serving.choices import DeploymentStatus
from serving.models import Deployment, DeploymentUsage
from serving.usage import LATENCY_BOUNDS_MS, histogram_percentile, latency_bucket
from tests import datagen
from tests.factories import DeploymentFactory
from trainers.ultralytics.annotate import annotated_jpeg

pytestmark = pytest.mark.django_db

SERVER_URL = "http://127.0.0.1:9"
BOX = {"class_id": 1, "class_name": "disc", "confidence": 0.91, "bbox": [8.0, 8.0, 40.0, 40.0]}


@pytest.fixture
def active(user):
    return DeploymentFactory(owner=user, status=DeploymentStatus.ACTIVE, server_url=SERVER_URL)


def answer(status_code=200, body=None):
    response = mock.Mock(status_code=status_code)
    response.json.return_value = body if body is not None else {"predictions": [dict(BOX)], "inference_time_ms": 2.0}
    return response


def predict(client, deployment, image, **params):
    return client.post(f"/api/v1/deployments/{deployment.pk}/predict/", {"image": image, **params}, format="multipart")


# --- options and the annotated image


def test_all_options_are_forwarded_to_the_model_server(user, api, active, image_upload):
    with mock.patch("serving.predict._session.post", return_value=answer()) as post:
        response = predict(api(user), active, image_upload(), conf=0.3, iou=0.45, max_det=7, classes=[0, 2])

    assert response.status_code == 200, response.content
    assert post.call_args.kwargs["params"] == {"conf": 0.3, "iou": 0.45, "max_det": 7, "classes": "0,2"}
    assert "annotated_image" not in response.json()


@pytest.mark.parametrize(("field", "value"), [("conf", 1.5), ("iou", -0.1), ("max_det", 0), ("classes", -1)])
def test_out_of_range_options_are_refused(user, api, active, image_upload, field, value):
    with mock.patch("serving.predict._session.post") as post:
        response = predict(api(user), active, image_upload(), **{field: value})

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    post.assert_not_called()


def test_annotated_returns_a_jpeg_with_the_boxes_drawn(user, api, active, image_upload):
    image = datagen.sample_image_bytes(size=64)

    with mock.patch("serving.predict._session.post", return_value=answer()):
        response = predict(api(user), active, image_upload(image), annotated="true")

    body = response.json()
    assert body["annotated_image_content_type"] == "image/jpeg"
    drawn = Image.open(io.BytesIO(base64.b64decode(body["annotated_image"])))
    assert drawn.format == "JPEG" and drawn.size == (64, 64)
    assert body["predictions"] == [BOX]


def test_annotation_draws_the_box_outline_in_the_class_colour():
    plain = Image.new("RGB", (64, 64), (0, 0, 0))

    drawn = Image.open(io.BytesIO(annotated_jpeg(plain, [BOX], quality=100))).convert("RGB")

    red, green, blue = drawn.getpixel((40, 30))  # on the right edge of the box
    assert green > 150 and red < 150  # class 1's colour is green
    assert drawn.getpixel((24, 30)) == (0, 0, 0) or sum(drawn.getpixel((24, 30))) < 30  # inside stays empty


def test_a_declared_content_type_that_is_not_an_image_is_refused(user, api, active, image_upload):
    with mock.patch("serving.predict._session.post") as post:
        response = predict(api(user), active, image_upload(content_type="text/html"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_content_type"
    post.assert_not_called()


def test_an_image_over_the_byte_limit_is_refused(user, api, active, image_upload, settings):
    settings.PREDICT_MAX_IMAGE_BYTES = 100

    response = predict(api(user), active, image_upload())

    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


def test_a_json_body_is_an_unsupported_media_type(user, api, active):
    response = api(user).post(f"/api/v1/deployments/{active.pk}/predict/", {"image": "x"}, format="json")

    assert response.status_code == 415


# --- usage


def test_each_prediction_is_counted_with_its_latency(user, api, active, image_upload):
    with mock.patch("serving.predict._session.post", return_value=answer()):
        for _ in range(3):
            assert predict(api(user), active, image_upload()).status_code == 200
    with mock.patch("serving.predict._session.post", return_value=answer(500, {})):
        assert predict(api(user), active, image_upload()).status_code == 503

    row = DeploymentUsage.objects.get(deployment=active)
    assert row.request_count == 4 and row.error_count == 1
    assert sum(row.latency_histogram) == 4
    assert row.minute.second == 0


def test_usage_percentiles_come_from_the_minute_histograms(active):
    for latency in [1.5] * 90 + [40.0] * 9 + [600.0]:
        services.deployment_usage_record(deployment_id=active.pk, latency_ms=latency, error=False)

    summary = selectors.deployment_usage_summary(deployment=active)

    assert summary["request_count"] == 100 and summary["error_count"] == 0
    assert summary["latency_ms"]["p50"] == 2.0
    assert summary["latency_ms"]["p95"] == 50.0
    assert summary["latency_ms"]["p99"] == 50.0
    assert summary["latency_ms"]["mean"] == pytest.approx((90 * 1.5 + 9 * 40 + 600) / 100)


def test_usage_outside_the_window_is_left_out(active):
    DeploymentUsage.objects.create(
        deployment=active,
        minute=timezone.now().replace(second=0, microsecond=0) - timedelta(hours=3),
        request_count=50,
        latency_histogram=[50],
    )
    services.deployment_usage_record(deployment_id=active.pk, latency_ms=12, error=True)

    summary = selectors.deployment_usage_summary(deployment=active, minutes=60)

    assert summary["request_count"] == 1 and summary["error_count"] == 1
    assert summary["latency_ms"]["p50"] == 15.0


def test_latency_buckets_and_percentiles():
    assert latency_bucket(0.2) == 0
    assert latency_bucket(1.0) == 0
    assert latency_bucket(1.01) == 1
    assert latency_bucket(10**6) == len(LATENCY_BOUNDS_MS)
    assert histogram_percentile([], 0.5) is None
    assert histogram_percentile([0] * len(LATENCY_BOUNDS_MS) + [3], 0.99) == float(LATENCY_BOUNDS_MS[-1])


def test_usage_api_for_a_deployment_and_an_endpoint(user, other_user, api, active):
    services.deployment_usage_record(deployment_id=active.pk, latency_ms=4, error=False)

    body = api(user).get(f"/api/v1/deployments/{active.pk}/usage/?minutes=5").json()

    assert body["deployment"] == active.pk and body["window_minutes"] == 5
    assert body["request_count"] == 1 and body["latency_ms"]["p50"] == 5.0
    assert len(body["minutes"]) == 1
    assert api(other_user).get(f"/api/v1/deployments/{active.pk}/usage/").status_code == 404
    assert api(user).get(f"/api/v1/deployments/{active.pk}/usage/?minutes=0").status_code == 400


def test_admin_shows_usage_on_the_list_and_change_pages(active, staff_user, client):
    services.deployment_usage_record(deployment_id=active.pk, latency_ms=4, error=False)
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)

    listing = client.get("/admin/serving/deployment/").content.decode()
    change = client.get(f"/admin/serving/deployment/{active.pk}/change/").content.decode()

    expected = "1 req, 0 err, p50 5 / p95 5 / p99 5 ms"
    assert expected in listing and expected in change
    assert DeploymentAdmin(Deployment, site).usage(DeploymentFactory(owner=active.owner)) == "no requests"
