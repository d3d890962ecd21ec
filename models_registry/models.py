from django.conf import settings
from django.db import models

from models_registry.choices import ReviewStatus, VersionEventKind


def base_model_path(instance, filename):
    return f"base-models/{instance.name}-{instance.sha256[:12]}.pt"


class BaseModel(models.Model):
    """Pretrained weights uploaded by staff (trusted files); training can start from them."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    weights = models.FileField(upload_to=base_model_path, max_length=500)
    sha256 = models.CharField(max_length=64, editable=False)
    size = models.BigIntegerField(default=0, editable=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class RegisteredModel(models.Model):
    """A named model that versions are trained for (one per owner and name)."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="registered_models")
    task = models.CharField(max_length=20, default="detect")
    classes = models.JSONField(default=list)
    min_map50 = models.FloatField(
        null=True, blank=True, help_text="Promotion policy: approval is blocked below this mAP50 (0-1)."
    )
    max_class_regression = models.FloatField(
        null=True,
        blank=True,
        help_text="Promotion policy: approval is blocked when any class's mAP50 drops more than this "
        "against the current approved version (e.g. 0.05).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_model_name_per_owner")]

    def __str__(self):
        return self.name


class ModelVersion(models.Model):
    """One trained, immutable version of a registered model, gated by review."""

    registered_model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    training_job = models.OneToOneField(
        "jobs.Job", on_delete=models.PROTECT, related_name="trained_version", null=True, blank=True
    )
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="model_versions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="trained_versions")
    metrics = models.JSONField(default=dict, blank=True)
    artifact = models.FileField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.BigIntegerField(default=0)
    review_status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.PENDING_REVIEW, db_index=True
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="reviewed_versions"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, help_text="The approval note or the rejection reason.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["registered_model", "number"], name="unique_version_number"),
        ]
        permissions = [("approve_modelversion", "Can approve or reject model versions")]

    def __str__(self):
        return f"{self.registered_model.name} v{self.number}"


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk update and delete would bypass the per-row guard: refuse them too."""

    def update(self, **kwargs):
        raise ValueError("Audit events are append-only.")

    def delete(self):
        raise ValueError("Audit events are append-only.")


class ModelArtifact(models.Model):
    """An export of a version to another format (ONNX, TorchScript), stored with its sha256."""

    class Format(models.TextChoices):
        ONNX = "onnx", "ONNX"
        TORCHSCRIPT = "torchscript", "TorchScript"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=20, choices=Format.choices)
    file = models.FileField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    job = models.OneToOneField("jobs.Job", on_delete=models.PROTECT, related_name="export_artifact")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "format"], name="one_export_per_format")]

    def __str__(self):
        return f"{self.version} as {self.format}"


class ModelVersionEvent(models.Model):
    """Append-only audit trail of a version: who did what, when, and why."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=20, choices=VersionEventKind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.kind} of {self.version_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")
