from django.conf import settings
from django.db import models

from datasets.choices import DatasetFormat, DatasetStatus, DatasetTask, FileRole, FileStatus, IngestStage


def dataset_archive_path(instance, filename):
    return f"datasets/{instance.owner_id}/{instance.upload_uuid}/archive.zip"


def dataset_storage_prefix(dataset):
    """Everything stored for one data set lives under this prefix."""
    return f"datasets/{dataset.owner_id}/{dataset.upload_uuid}/"


class Dataset(models.Model):
    """One immutable version of an uploaded image data set: the original archive plus what ingest found.

    `content_sha256` addresses the archive; `layout_sha256` addresses the
    Ultralytics-ready layout built from it (which files, where, converted
    labels), and keys the node-local cache.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1, help_text="1, 2, ... per owner and name.")
    upload_uuid = models.UUIDField(unique=True)
    archive = models.FileField(upload_to=dataset_archive_path, max_length=500)
    archive_size = models.BigIntegerField(default=0)
    content_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    upload_fingerprint = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Archive hash plus the options that shape the layout."
    )
    options = models.JSONField(default=dict, blank=True, help_text="val_ratio, split_seed, task as uploaded.")
    auto_train = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=DatasetStatus.choices, default=DatasetStatus.VALIDATING)
    task = models.CharField(max_length=20, choices=DatasetTask.choices, default=DatasetTask.DETECT)
    format = models.CharField(max_length=30, choices=DatasetFormat.choices, blank=True)
    classes = models.JSONField(default=list, blank=True)
    num_images = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    layout_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    manifest = models.CharField(max_length=500, blank=True, help_text="Storage name of the layout manifest.")
    stage = models.CharField(max_length=20, choices=IngestStage.choices, default=IngestStage.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0-100.")
    ingest_attempt = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name", "version"], name="dataset_unique_owner_name_version"),
        ]

    def __str__(self):
        return f"{self.name} v{self.version} (#{self.pk})"


class DatasetFile(models.Model):
    """One file of an uploaded archive: what it is, whether it reaches training, and every problem found."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=1024, help_text="Path inside the archive, without its top folder.")
    role = models.CharField(max_length=20, choices=FileRole.choices)
    split = models.CharField(max_length=10, blank=True)
    status = models.CharField(max_length=20, choices=FileStatus.choices)
    # ",0,3," so that "contains class 3" is a portable LIKE query on SQLite and PostgreSQL alike.
    class_ids = models.TextField(blank=True)
    instances = models.PositiveIntegerField(default=0)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    problems = models.JSONField(default=list, blank=True)
    has_problems = models.BooleanField(default=False)
    preview = models.CharField(max_length=500, blank=True, help_text="Storage name of the thumbnail.")

    class Meta:
        ordering = ["split", "path", "id"]
        indexes = [
            models.Index(fields=["dataset", "split", "path"], name="datasetfile_split_path"),
            models.Index(fields=["dataset", "has_problems"], name="datasetfile_problems"),
        ]

    def __str__(self):
        return self.path

    @property
    def class_indexes(self):
        return [int(part) for part in self.class_ids.strip(",").split(",") if part]
