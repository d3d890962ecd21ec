from django.db import models


class DatasetStatus(models.TextChoices):
    VALIDATING = "validating", "Validating"
    READY = "ready", "Ready"
    INVALID = "invalid", "Invalid"


class DatasetTask(models.TextChoices):
    DETECT = "detect", "Detection"
    SEGMENT = "segment", "Segmentation"
    CLASSIFY = "classify", "Classification"


class DatasetFormat(models.TextChoices):
    """The layout an upload was recognised as; every one is stored in the Ultralytics layout."""

    YOLO = "yolo", "Ultralytics YOLO (images/{train,val} + labels/{train,val})"
    YOLO_SPLIT_FOLDERS = "yolo-split-folders", "Ultralytics YOLO ({train,valid}/images + labels)"
    YOLO_FLAT = "yolo-flat", "Flat images/ + labels/ (split by the portal)"
    COCO = "coco", "COCO instances JSON (converted)"
    CLASSIFY = "classify", "Classification ({train,val}/<class>/)"
    CLASSIFY_FLAT = "classify-flat", "Classification, one folder per class (split by the portal)"


class IngestStage(models.TextChoices):
    QUEUED = "queued", "Queued"
    EXTRACTING = "extracting", "Extracting"
    VALIDATING = "validating", "Validating"
    PREVIEWS = "previews", "Drawing previews"
    STORING = "storing", "Storing"
    DONE = "done", "Done"


class FileRole(models.TextChoices):
    IMAGE = "image", "Image"
    LABEL = "label", "Label file"
    ANNOTATIONS = "annotations", "Annotation file"
    NAMES = "names", "Class names"
    OTHER = "other", "Other"


class FileStatus(models.TextChoices):
    OK = "ok", "Used"
    BACKGROUND = "background", "Used, background (no objects)"
    EXCLUDED = "excluded", "Excluded"
    IGNORED = "ignored", "Ignored"


DATASET_TRANSITIONS = {
    DatasetStatus.VALIDATING: {DatasetStatus.READY, DatasetStatus.INVALID},
    DatasetStatus.READY: set(),
    DatasetStatus.INVALID: set(),
}
