from django.conf import settings
from django.db import models

from serving.choices import DeploymentStatus


class Endpoint(models.Model):
    """The stable address of a registered model: predict goes to its current deployment."""

    registered_model = models.OneToOneField(
        "models_registry.RegisteredModel", on_delete=models.PROTECT, related_name="endpoint"
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="endpoints")
    slug = models.SlugField(max_length=200, unique=True)
    current_deployment = models.ForeignKey(
        "serving.Deployment", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    switched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class Deployment(models.Model):
    """One model server process holding an approved version, pinned by its sha256."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="deployments")
    name = models.CharField(max_length=200)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments")
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


class DeploymentUsage(models.Model):
    """One minute of a deployment's traffic: counts and a latency histogram (bounds in serving.usage)."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="usage")
    minute = models.DateTimeField()
    request_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    latency_histogram = models.JSONField(default=list)
    latency_total_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-minute"]
        constraints = [models.UniqueConstraint(fields=["deployment", "minute"], name="one_usage_row_per_minute")]

    def __str__(self):
        return f"{self.deployment_id} @ {self.minute:%Y-%m-%d %H:%M}"


class InferenceResult(models.Model):
    """What an inference job predicted for one of its images."""

    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="inference_results")
    index = models.PositiveIntegerField(help_text="Position of the image in the job's input.")
    name = models.CharField(max_length=300, help_text="The image's file name as uploaded.")
    image = models.FileField(max_length=500)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    predictions = models.JSONField(default=list)
    inference_time_ms = models.FloatField(default=0.0)
    error = models.TextField(blank=True, help_text="Why this image could not be predicted, if it could not.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_result_per_job_image")]

    def __str__(self):
        return f"result {self.index} of job {self.job_id}"
