"""The images of an inference request: several uploaded files, or one zip of images, checked here."""

import posixpath
import zipfile
from dataclasses import dataclass

from django.conf import settings

from portal.errors import ApplicationError
from serving.predict import PayloadTooLarge, content_type_check, image_check

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class InputImage:
    name: str
    data: bytes


def _too_many(count):
    if count > settings.INFERENCE_MAX_IMAGES:
        raise PayloadTooLarge(f"{count} images; an inference job takes at most {settings.INFERENCE_MAX_IMAGES}.")


def _checked(name, data):
    try:
        image_check(data)
    except ApplicationError as exc:
        exc.message = f"{name}: {exc.message}"
        exc.args = (exc.message,)
        raise
    return InputImage(name=name, data=data)


def images_from_zip(upload):
    """The images of a zip, refused whole if a member is hostile (too big, too many) or not an image."""
    try:
        archive = zipfile.ZipFile(upload)
    except zipfile.BadZipFile as exc:
        raise ApplicationError("The archive is not a zip file.", code="bad_archive") from exc
    with archive:
        members = [
            m for m in archive.infolist() if not m.is_dir() and not posixpath.basename(m.filename).startswith(".")
        ]
        members = [m for m in members if posixpath.splitext(m.filename)[1].lower() in IMAGE_SUFFIXES]
        _too_many(len(members))
        if not members:
            raise ApplicationError("The archive holds no JPEG, PNG, BMP or WEBP image.", code="no_images")
        images = []
        for member in members:
            if member.file_size > settings.PREDICT_MAX_IMAGE_BYTES:
                raise PayloadTooLarge(
                    f"{member.filename} is {member.file_size} bytes uncompressed; the limit is "
                    f"{settings.PREDICT_MAX_IMAGE_BYTES}."
                )
            with archive.open(member) as handle:
                data = handle.read(settings.PREDICT_MAX_IMAGE_BYTES + 1)
            images.append(_checked(posixpath.basename(member.filename), data))
    return images


def images_from_uploads(uploads):
    """Several uploaded image files, each checked like a synchronous predict's image."""
    _too_many(len(uploads))
    images = []
    for upload in uploads:
        content_type_check(getattr(upload, "content_type", ""))
        images.append(_checked(upload.name, upload.read(settings.PREDICT_MAX_IMAGE_BYTES + 1)))
    return images
