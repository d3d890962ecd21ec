from django.conf import settings
from django.db import models

from serving.choices import DeploymentStatus


class Deployment(models.Model):
    """One model server process holding an approved version, pinned by its sha256."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deployments")
    name = models.CharField(max_length=200)
    model_version = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.PROTECT, related_name="deployments"
    )
    artifact_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.STARTING)
    server_url = models.CharField(max_length=300, blank=True)
    shutdown_token = models.CharField(max_length=100, blank=True)
    host = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} ({self.status})"
