"""Thumbnails with the labels drawn on: boxes, polygons (filled, translucent) or the class name.

Each class has its own colour, the same in every thumbnail and in the API's
class list. Only a sample per split is drawn (DATASET_PREVIEWS_PER_SPLIT),
chosen so that every class shows up before any class shows twice.
"""

import colorsys
import io

from PIL import Image, ImageDraw, ImageFont, ImageOps

from datasets.choices import DatasetTask
from datasets.formats.common import SPLITS
from datasets.validation.images import PILLOW_FORMATS

# Ultralytics' own palette, so the previews look like its plots.
PALETTE = [
    "042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
    "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
]  # fmt: skip


def class_colour(index):
    """An RGB colour per class id: the palette, then evenly spread hues."""
    if index < len(PALETTE):
        value = PALETTE[index]
        return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))
    hue = (index * 0.618033988749895) % 1.0
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95))


def class_colour_hex(index):
    return "#{:02x}{:02x}{:02x}".format(*class_colour(index))


def preview_choose(samples, classes, per_split):
    """Up to `per_split` samples per split, covering every class first; deterministic (ordered by content hash)."""
    chosen = []
    for split in SPLITS:
        pool = sorted((s for s in samples if s.split == split), key=lambda s: (s.sha256, s.path))
        by_class = {index: [s for s in pool if index in s.class_ids] for index in range(len(classes))}
        picked, seen = [], set()
        while len(picked) < per_split:
            grown = False
            for index in range(len(classes)):
                while by_class[index] and by_class[index][0].path in seen:
                    by_class[index].pop(0)
                if by_class[index] and len(picked) < per_split:
                    sample = by_class[index].pop(0)
                    picked.append(sample)
                    seen.add(sample.path)
                    grown = True
            if not grown:
                break
        for sample in pool:
            if len(picked) >= per_split:
                break
            if sample.path not in seen:
                picked.append(sample)
                seen.add(sample.path)
        chosen.extend(picked)
    return chosen


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):
        return ImageFont.load_default()


def _tag(draw, xy, text, colour, font):
    left, top = xy
    box = draw.textbbox((left, top), text, font=font)
    draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=colour)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    draw.text((left, top), text, fill=(0, 0, 0) if luminance > 150 else (255, 255, 255), font=font)


def preview_render(data, *, task, rows, class_name, classes, size):
    """A JPEG thumbnail of one image (its bytes) with its labels drawn on."""
    with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as source:
        width, height = source.size
        fit = min(size / width, size / height, 1.0)
        # JPEG: decode directly at the smallest scale that still covers the thumbnail.
        source.draft("RGB", (max(1, round(width * fit)), max(1, round(height * fit))))
        image = ImageOps.exif_transpose(source)
    if image.mode != "RGB":
        image = image.convert("RGB")
    image.thumbnail((size, size), Image.Resampling.BILINEAR)
    width, height = image.size
    font = _font(max(9, size // 20))
    if task == DatasetTask.CLASSIFY:
        draw = ImageDraw.Draw(image)
        index = classes.index(class_name) if class_name in classes else 0
        _tag(draw, (3, 3), class_name, class_colour(index), font)
    else:
        shapes = []
        for class_id, coords in rows or ():
            if len(coords) == 4:
                cx, cy, w, h = coords
                box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
                shapes.append((class_id, None, box))
            else:
                points = [(coords[i] * width, coords[i + 1] * height) for i in range(0, len(coords) - 1, 2)]
                shapes.append((class_id, points, None))
        if task == DatasetTask.SEGMENT:
            overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
            shade = ImageDraw.Draw(overlay)
            for class_id, points, _ in shapes:
                if points:
                    shade.polygon(points, fill=(*class_colour(class_id), 90))
            image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
        draw = ImageDraw.Draw(image)
        for class_id, points, box in shapes:
            colour = class_colour(class_id)
            if box:
                draw.rectangle(box, outline=colour, width=2)
            else:
                draw.polygon(points, outline=colour, width=2)
        for class_id, points, box in shapes:
            label = classes[class_id] if class_id < len(classes) else str(class_id)
            corner = (box[0] + 2, box[1] + 2) if box else min(points)
            _tag(draw, corner, label, class_colour(class_id), font)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()
