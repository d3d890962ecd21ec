"""Synchronous predict: check the image here, forward it to the warm model server."""

import base64
import io
import logging
import time

import requests
from django.conf import settings
from PIL import Image

from portal.errors import ApplicationError
from serving import selectors, services
from serving.choices import DeploymentStatus
from trainers.ultralytics.annotate import annotated_jpeg

logger = logging.getLogger(__name__)

ALLOWED_FORMATS = ["JPEG", "PNG", "BMP", "WEBP"]
# A declared content type must be one of these (clients that send none, or octet-stream, are sniffed).
ALLOWED_CONTENT_TYPES = {
    "image/jpeg",
    "image/png",
    "image/bmp",
    "image/x-ms-bmp",
    "image/webp",
    "application/octet-stream",
}
_session = requests.Session()  # one pooled keep-alive connection per model server
# Model servers are on the cluster's own addresses: no proxy applies, and reading the
# proxy variables from the environment on every request cost more than the forward itself.
_session.trust_env = False


class ServiceUnavailable(ApplicationError):
    status_code = 503
    code = "unavailable"
    retry_after = 30


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "too_large"


def content_type_check(content_type):
    if content_type and content_type.split(";")[0].strip().lower() not in ALLOWED_CONTENT_TYPES:
        raise ApplicationError(
            f"The content type {content_type} is not accepted; send a JPEG, PNG, BMP or WEBP image.",
            code="bad_content_type",
            fields={"image": [f"Content type {content_type} is not accepted."]},
        )


def image_check(data):
    """Refuse anything but a JPEG/PNG/BMP/WEBP image under the pixel limit."""
    if len(data) > settings.PREDICT_MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"The image is {len(data)} bytes; the limit is {settings.PREDICT_MAX_IMAGE_BYTES}.")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            width, height = image.size
    except (OSError, Image.DecompressionBombError) as exc:
        raise ApplicationError(
            "The file is not a JPEG, PNG, BMP or WEBP image.", code="not_an_image", fields={"image": [str(exc)]}
        ) from exc
    if width * height > settings.IMAGE_MAX_PIXELS:
        raise PayloadTooLarge(f"The image has {width}x{height} pixels; the limit is {settings.IMAGE_MAX_PIXELS}.")


def _params(conf, iou, max_det, classes):
    params = {k: v for k, v in {"conf": conf, "iou": iou, "max_det": max_det}.items() if v is not None}
    if classes:
        params["classes"] = ",".join(str(c) for c in classes)
    return params


def _forward(deployment, data, params):
    if deployment is None or deployment.status != DeploymentStatus.ACTIVE or not deployment.server_url:
        raise ServiceUnavailable("No active deployment serves this request.")
    return _session.post(f"{deployment.server_url}/predict", params=params, data=data, timeout=60)


def _answer(response, data, annotated):
    if response.status_code == 400:
        raise ApplicationError(response.json().get("error", "bad request"), code="bad_image")
    if response.status_code != 200:
        raise ServiceUnavailable(f"The model server answered {response.status_code}.")
    result = response.json()
    if annotated:
        jpeg = annotated_jpeg(data, result.get("predictions", []))
        result["annotated_image"] = base64.b64encode(jpeg).decode()
        result["annotated_image_content_type"] = "image/jpeg"
    return result


def _record(deployment, started, error, defer=None):
    """Count the request in the deployment's usage; with `defer`, hand the write to the caller to run later."""
    if deployment is None:
        return
    latency_ms = (time.perf_counter() - started) * 1000

    def write():
        try:
            services.deployment_usage_record(deployment_id=deployment.pk, latency_ms=latency_ms, error=error)
        except Exception:  # usage is best effort: never fail a prediction for its bookkeeping
            logger.exception("could not record usage of deployment %s", deployment.pk)

    if defer is None:
        write()
    else:
        defer(write)


def _predict(deployment, data, *, params, annotated, endpoint_id=None, defer=None):
    started = time.perf_counter()
    try:
        image_check(data)
        try:
            response = _forward(deployment, data, params)
        except requests.RequestException as exc:
            if endpoint_id is None:
                raise ServiceUnavailable(f"The model server of deployment {deployment.pk} did not answer.") from exc
            # The endpoint may have switched between the lookup and the request and the old
            # server may be gone already: ask once more, to whatever the endpoint serves now.
            replacement = selectors.endpoint_current_deployment(endpoint_id=endpoint_id)
            try:
                response = _forward(replacement, data, params)
            except requests.RequestException as retry_exc:
                raise ServiceUnavailable("The model server did not answer.") from retry_exc
            deployment = replacement
        result = _answer(response, data, annotated)
    except ApplicationError as exc:
        if isinstance(exc, ServiceUnavailable) or exc.code == "bad_image":
            _record(deployment, started, error=True, defer=defer)
        raise
    _record(deployment, started, error=False, defer=defer)
    result.setdefault("deployment", deployment.pk)
    result.setdefault("model_version", deployment.model_version_id)
    return result


def deployment_predict(
    *, deployment, data, conf=None, iou=None, max_det=None, classes=None, annotated=False, defer=None
):
    """Predict on one deployment (by id): no retry elsewhere.

    `defer`, when given, receives the usage write instead of it running before the answer.
    """
    if deployment.status != DeploymentStatus.ACTIVE or not deployment.server_url:
        raise ServiceUnavailable(f"Deployment {deployment.pk} is {deployment.status}.")
    return _predict(deployment, data, params=_params(conf, iou, max_det, classes), annotated=annotated, defer=defer)


def endpoint_predict(*, endpoint, data, conf=None, iou=None, max_det=None, classes=None, annotated=False, defer=None):
    """Predict on whatever the endpoint serves now; a server that went away mid-switch is retried once.

    `endpoint` comes with its current deployment, read in this request (`selectors.endpoint_list`).
    """
    deployment = endpoint.current_deployment
    if deployment is None or deployment.status != DeploymentStatus.ACTIVE or not deployment.server_url:
        state = "nothing" if deployment is None else f"deployment {deployment.pk}, which is {deployment.status}"
        raise ServiceUnavailable(f"Endpoint {endpoint.slug} serves {state}.")
    return _predict(
        deployment,
        data,
        params=_params(conf, iou, max_det, classes),
        annotated=annotated,
        endpoint_id=endpoint.pk,
        defer=defer,
    )
