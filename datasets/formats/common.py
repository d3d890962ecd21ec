"""What every format reader produces: samples (one image each) in a common shape."""

from dataclasses import dataclass, field
from pathlib import PurePosixPath

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLITS = ("train", "val")
# Folder names people use for the splits; "test" is recognised so it can be set aside with a message.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}


def split_alias(name):
    return SPLIT_ALIASES.get(name.lower())


def is_image_name(path):
    return path.lower().endswith(IMAGE_SUFFIXES)


def parts_of(path):
    return PurePosixPath(path).parts


@dataclass
class Sample:
    """One image as training would see it, and what is known about it."""

    path: str
    split: str | None = None
    label: str | None = None
    class_name: str | None = None
    rows: list | None = None
    generated: bool = False
    name_in_split: str = ""
    width: int = 0
    height: int = 0
    sha256: str = ""
    image_format: str = ""
    excluded: bool = False
    coco_size: tuple | None = None
    dst: str = ""
    dst_label: str = ""
    class_ids: set = field(default_factory=set)

    def stem_in_split(self):
        return str(PurePosixPath(self.name_in_split).with_suffix(""))
