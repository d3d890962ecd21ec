"""Synchronous predict: check the image here, forward it to the warm model server."""

import io

import requests
from django.conf import settings
from PIL import Image

from portal.errors import ApplicationError
from serving.choices import DeploymentStatus

ALLOWED_FORMATS = ["JPEG", "PNG", "BMP", "WEBP"]
_session = requests.Session()  # one pooled keep-alive connection per model server


class ServiceUnavailable(ApplicationError):
    status_code = 503
    code = "unavailable"
    retry_after = 30


class PayloadTooLarge(ApplicationError):
    status_code = 413
    code = "too_large"


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


def deployment_predict(*, deployment, data, conf=None, iou=None, max_det=None, classes=None):
    if deployment.status != DeploymentStatus.ACTIVE or not deployment.server_url:
        raise ServiceUnavailable(f"Deployment {deployment.pk} is {deployment.status}.")
    image_check(data)
    params = {k: v for k, v in {"conf": conf, "iou": iou, "max_det": max_det}.items() if v is not None}
    if classes:
        params["classes"] = ",".join(str(c) for c in classes)
    try:
        response = _session.post(f"{deployment.server_url}/predict", params=params, data=data, timeout=60)
    except requests.RequestException as exc:
        raise ServiceUnavailable(f"The model server of deployment {deployment.pk} did not answer.") from exc
    if response.status_code == 400:
        raise ApplicationError(response.json().get("error", "bad request"), code="bad_image")
    if response.status_code != 200:
        raise ServiceUnavailable(f"The model server answered {response.status_code}.")
    return response.json()
