"""Tiny synthetic detection data sets, generated on the fly (nothing is downloaded)."""

import io
import random
import zipfile

from PIL import Image, ImageDraw

CLASSES = ["square", "disc"]
COLOURS = {"square": (220, 40, 40), "disc": (40, 80, 220)}


def draw_image(rng, size=64):
    """One image with 1-2 objects; returns (PIL image, YOLO label lines)."""
    image = Image.new("RGB", (size, size), (rng.randint(100, 160),) * 3)
    draw = ImageDraw.Draw(image)
    lines = []
    for _ in range(rng.randint(1, 2)):
        class_id = rng.randrange(len(CLASSES))
        w = rng.randint(size // 4, size // 2)
        h = w
        x0 = rng.randint(0, size - w)
        y0 = rng.randint(0, size - h)
        box = [x0, y0, x0 + w, y0 + h]
        if CLASSES[class_id] == "square":
            draw.rectangle(box, fill=COLOURS["square"])
        else:
            draw.ellipse(box, fill=COLOURS["disc"])
        cx, cy = (x0 + w / 2) / size, (y0 + h / 2) / size
        lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w / size:.6f} {h / size:.6f}")
    return image, lines


def image_bytes(image, fmt="JPEG"):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def detection_zip(*, train=16, val=8, size=64, seed=0, names=None, extra=None, top_folder=""):
    """A zip in the Ultralytics detection layout; `extra` maps member names to bytes."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    prefix = f"{top_folder}/" if top_folder else ""
    names = names if names is not None else CLASSES
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{prefix}data.yaml", "names:\n" + "".join(f"  - {n}\n" for n in names))
        for split, count in (("train", train), ("val", val)):
            for index in range(count):
                image, lines = draw_image(rng, size)
                archive.writestr(f"{prefix}images/{split}/img{index:03d}.jpg", image_bytes(image))
                archive.writestr(f"{prefix}labels/{split}/img{index:03d}.txt", "\n".join(lines) + "\n")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def sample_image_bytes(seed=123, size=64):
    image, _ = draw_image(random.Random(seed), size)
    return image_bytes(image)
