from django.conf import settings
from django.db import models

from datasets.choices import DatasetStatus, DatasetTask


def dataset_archive_path(instance, filename):
    return f"datasets/{instance.owner_id}/{instance.upload_uuid}/archive.zip"


class Dataset(models.Model):
    """An uploaded image data set: the original archive plus what validation found."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=200)
    upload_uuid = models.UUIDField(unique=True)
    archive = models.FileField(upload_to=dataset_archive_path, max_length=500)
    archive_size = models.BigIntegerField(default=0)
    content_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=DatasetStatus.choices, default=DatasetStatus.VALIDATING)
    task = models.CharField(max_length=20, choices=DatasetTask.choices, default=DatasetTask.DETECT)
    classes = models.JSONField(default=list, blank=True)
    num_images = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} (#{self.pk})"
