"""Drawing predictions on an image with Pillow alone (Ultralytics' plotting downloads a font)."""

import io

from PIL import Image, ImageDraw, ImageFont

PALETTE = [(255, 56, 56), (72, 249, 10), (0, 194, 255), (255, 157, 151), (207, 210, 49), (146, 204, 23)]


def annotated_jpeg(image, predictions, *, quality=85):
    """Return JPEG bytes of `image` with each prediction's box and label drawn on it.

    Args:
        image: a PIL image (any mode) or the encoded image bytes.
        predictions: dicts with ``bbox`` (x1, y1, x2, y2 in pixels), ``class_id``, ``class_name``
            and ``confidence``, as the model server returns them.
        quality: JPEG quality.
    """
    if isinstance(image, bytes | bytearray):
        image = Image.open(io.BytesIO(image))
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    width = max(1, round(max(canvas.size) / 300))
    for prediction in predictions:
        x1, y1, x2, y2 = prediction["bbox"]
        color = PALETTE[int(prediction.get("class_id", 0)) % len(PALETTE)]
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        label = f"{prediction.get('class_name', prediction.get('class_id'))} {prediction.get('confidence', 0):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), label, font=font)
        text_top = max(0, y1 - (bottom - top) - 2)
        draw.rectangle([x1, text_top, x1 + (right - left) + 4, text_top + (bottom - top) + 2], fill=color)
        draw.text((x1 + 2, text_top), label, fill=(255, 255, 255), font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
