"""Tiny synthetic detection data sets, generated on the fly (nothing is downloaded)."""

import io
import json
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


def _zip(members):
    """A zip of {name: bytes or str}, in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _names_yaml(names):
    return "names:\n" + "".join(f"  - {n}\n" for n in names)


def split_folders_zip(*, train=8, val=4, size=64, seed=0):
    """Roboflow's export: data.yaml, train/images + train/labels, valid/images + valid/labels."""
    rng = random.Random(seed)
    members = {"data.yaml": "train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['square', 'disc']\n"}
    for split, count in (("train", train), ("valid", val)):
        for index in range(count):
            image, lines = draw_image(rng, size)
            members[f"{split}/images/img{index:03d}.jpg"] = image_bytes(image)
            members[f"{split}/labels/img{index:03d}.txt"] = "\n".join(lines) + "\n"
    return _zip(members)


def flat_detection_zip(*, count=20, size=64, seed=0, names_file="data.yaml", background=0):
    """images/ + labels/ without splits; the class names in data.yaml or classes.txt."""
    rng = random.Random(seed)
    members = {}
    if names_file == "data.yaml":
        members["data.yaml"] = _names_yaml(CLASSES)
    elif names_file == "classes.txt":
        members["classes.txt"] = "\n".join(CLASSES) + "\n"
    for index in range(count):
        image, lines = draw_image(rng, size)
        members[f"images/img{index:03d}.jpg"] = image_bytes(image)
        members[f"labels/img{index:03d}.txt"] = "\n".join(lines) + "\n"
    for index in range(background):
        members[f"images/empty{index:03d}.jpg"] = image_bytes(Image.new("RGB", (size, size), (60 + 10 * index,) * 3))
    return _zip(members)


def draw_polygon_image(rng, size=64):
    """One image with 1-2 shapes (triangle = class 0, diamond = class 1); returns (image, polygon lines)."""
    image = Image.new("RGB", (size, size), (rng.randint(100, 160),) * 3)
    draw = ImageDraw.Draw(image)
    lines = []
    for _ in range(rng.randint(1, 2)):
        class_id = rng.randrange(2)
        r = rng.randint(size // 8, size // 4)
        cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
        if class_id == 0:
            points = [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
        else:
            points = [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
        draw.polygon(points, fill=(220, 40, 40) if class_id == 0 else (40, 80, 220))
        coords = " ".join(f"{x / size:.6f} {y / size:.6f}" for x, y in points)
        lines.append(f"{class_id} {coords}")
    return image, lines


SEGMENT_CLASSES = ["triangle", "diamond"]


def segmentation_zip(*, train=8, val=4, size=64, seed=0):
    """The Ultralytics layout with polygon labels."""
    rng = random.Random(seed)
    members = {"data.yaml": _names_yaml(SEGMENT_CLASSES)}
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            image, lines = draw_polygon_image(rng, size)
            members[f"images/{split}/img{index:03d}.png"] = image_bytes(image, "PNG")
            members[f"labels/{split}/img{index:03d}.txt"] = "\n".join(lines) + "\n"
    return _zip(members)


def class_image(rng, class_name, size=64):
    image = Image.new("RGB", (size, size), (rng.randint(100, 160),) * 3)
    draw = ImageDraw.Draw(image)
    w = rng.randint(size // 3, size // 2)
    x0, y0 = rng.randint(0, size - w), rng.randint(0, size - w)
    if class_name == "square":
        draw.rectangle([x0, y0, x0 + w, y0 + w], fill=COLOURS["square"])
    else:
        draw.ellipse([x0, y0, x0 + w, y0 + w], fill=COLOURS["disc"])
    return image


def classification_zip(*, train=6, val=2, size=64, seed=0, top_folder="shapes"):
    """{train,val}/<class>/*.jpg, inside one top folder (as zipping a folder gives)."""
    rng = random.Random(seed)
    members = {}
    for split, count in (("train", train), ("val", val)):
        for class_name in CLASSES:
            for index in range(count):
                members[f"{top_folder}/{split}/{class_name}/{index:03d}.jpg"] = image_bytes(
                    class_image(rng, class_name, size)
                )
    return _zip(members)


def classification_flat_zip(*, per_class=10, size=64, seed=0):
    """One folder of images per class, no split."""
    rng = random.Random(seed)
    return _zip(
        {
            f"{class_name}/{index:03d}.jpg": image_bytes(class_image(rng, class_name, size))
            for class_name in CLASSES
            for index in range(per_class)
        }
    )


def coco_document(entries, *, categories=((1, "square"), (2, "disc")), polygons=True):
    """A COCO instances document from [(file_name, width, height, [(category_id, [x, y, w, h])])]."""
    images, annotations = [], []
    for image_id, (file_name, width, height, objects) in enumerate(entries, start=1):
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for category_id, (x, y, w, h) in objects:
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
            if polygons:
                annotation["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
            annotations.append(annotation)
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": cid, "name": name, "supercategory": "shape"} for cid, name in categories],
    }


def coco_zip(*, train=8, val=4, size=64, seed=0, polygons=False, split_files=True):
    """images/*.jpg + annotations/instances_{train,val}.json (or one instances.json); category ids 1 and 2."""
    rng = random.Random(seed)
    members = {}
    entries = {"train": [], "val": []}
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            image, lines = draw_image(rng, size)
            name = f"{split}{index:03d}.jpg"
            members[f"images/{name}"] = image_bytes(image)
            objects = []
            for line in lines:
                class_id, cx, cy, w, h = line.split()
                w, h = float(w) * size, float(h) * size
                x, y = float(cx) * size - w / 2, float(cy) * size - h / 2
                objects.append((int(class_id) + 1, [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]))
            entries[split].append((name, size, size, objects))
    if split_files:
        for split in ("train", "val"):
            members[f"annotations/instances_{split}.json"] = json.dumps(
                coco_document(entries[split], polygons=polygons)
            )
    else:
        members["annotations/instances.json"] = json.dumps(
            coco_document(entries["train"] + entries["val"], polygons=polygons)
        )
    return _zip(members)
