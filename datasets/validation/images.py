"""Image checks: Pillow restricted to JPEG/PNG/BMP/WEBP, a pixel limit checked before decoding,
and a full decode (a truncated or corrupt file fails here, not in the middle of a training run)."""

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile

PILLOW_FORMATS = ("BMP", "JPEG", "PNG", "WEBP")
EXTENSIONS_OF = {"JPEG": {".jpg", ".jpeg"}, "PNG": {".png"}, "BMP": {".bmp"}, "WEBP": {".webp"}}
MIN_SIDE = 10  # Ultralytics drops images smaller than 10 pixels a side
# EXIF orientations that swap width and height.
TRANSPOSED = {5, 6, 7, 8}

# Never decode a truncated file as if it were whole (a process-wide Pillow switch; this is its default).
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow warns above its own pixel count; the explicit limit below refuses those images before decoding.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class ImageProblem(ValueError):
    """The image cannot be used; the message says why."""


@dataclass(frozen=True)
class ImageFacts:
    width: int
    height: int
    format: str
    sha256: str


def inspect_image(path, max_pixels):
    """inspect_image_bytes of a file."""
    return inspect_image_bytes(path.read_bytes(), max_pixels)


def inspect_image_bytes(data, max_pixels):
    """Decode an image once and return its facts, or raise ImageProblem with the reason.

    Width and height are as displayed (after the EXIF orientation), which is
    how Ultralytics reads them and how labels are drawn.
    """
    if not data:
        raise ImageProblem("empty file")
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageProblem(f"{width}x{height} pixels is above the limit of {max_pixels}")
            image.load()
            image_format = image.format
            orientation = image.getexif().get(0x0112, 1) if image_format in {"JPEG", "WEBP", "PNG"} else 1
    except Image.DecompressionBombError as exc:
        raise ImageProblem(f"decompression bomb refused ({exc})") from exc
    except ImageProblem:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError, TypeError, IndexError, KeyError) as exc:
        if "truncated" in str(exc).lower():
            raise ImageProblem(f"truncated image: the file ends before its image data does ({exc})") from exc
        raise ImageProblem(f"not a readable JPEG/PNG/BMP/WEBP image ({exc})") from exc
    if orientation in TRANSPOSED:
        width, height = height, width
    if min(width, height) < MIN_SIDE:
        raise ImageProblem(f"image is {width}x{height}; Ultralytics needs at least {MIN_SIDE}x{MIN_SIDE} pixels")
    return ImageFacts(width=width, height=height, format=image_format, sha256=digest)


def suffix_matches(path, image_format):
    return path.suffix.lower() in EXTENSIONS_OF.get(image_format, set())
