from django.db import models


class DatasetStatus(models.TextChoices):
    VALIDATING = "validating", "Validating"
    READY = "ready", "Ready"
    INVALID = "invalid", "Invalid"


class DatasetTask(models.TextChoices):
    DETECT = "detect", "Detection"


DATASET_TRANSITIONS = {
    DatasetStatus.VALIDATING: {DatasetStatus.READY, DatasetStatus.INVALID},
    DatasetStatus.READY: set(),
    DatasetStatus.INVALID: set(),
}
