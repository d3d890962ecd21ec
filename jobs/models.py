from django.conf import settings
from django.db import models

from jobs.choices import AttemptOutcome, CheckpointKind, EventKind, JobKind, JobStatus


class Job(models.Model):
    """One unit of GPU work: a training run or a validation of a model version.

    `fencing_token` grows with every claim; callbacks must carry the current one,
    so a writer from an earlier attempt (a worker presumed dead) cannot change
    the job any more. `lease_until` is renewed by the launcher while the trainer
    lives; the reaper re-queues jobs whose lease lapsed.
    """

    kind = models.CharField(max_length=20, choices=JobKind.choices, default=JobKind.TRAIN, db_index=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="jobs")
    model_version = models.ForeignKey(
        "models_registry.ModelVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="jobs",
        help_text="The version evaluated (validate) or fine-tuned from (train).",
    )
    retry_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries")
    config = models.JSONField(default=dict)
    queue = models.CharField(max_length=50, default="gpu")
    priority = models.PositiveSmallIntegerField(default=5)
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    epoch = models.PositiveIntegerField(default=0, help_text="Epochs completed.")
    epochs = models.PositiveIntegerField()
    progress = models.FloatField(default=0.0, help_text="0-100.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Latest metrics.")
    eta_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    fencing_token = models.PositiveIntegerField(default=0)
    callback_token_hash = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} job #{self.pk} ({self.status})"

    @property
    def group_name(self):
        return f"job-{self.pk}"


class JobEvent(models.Model):
    """An append-only record of what happened to a job; the live feed replays these."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    attempt = models.PositiveIntegerField(default=0)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["job", "id"])]

    def __str__(self):
        return f"{self.kind} of job {self.job_id}"

    def as_message(self):
        return {
            "type": "event",
            "id": self.pk,
            "job": self.job_id,
            "kind": self.kind,
            "attempt": self.attempt,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


class JobAttempt(models.Model):
    """One claim of a job by a worker: where it ran, from which epoch, and how it ended."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=200, blank=True)
    resumed_from_epoch = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=AttemptOutcome.choices, default=AttemptOutcome.RUNNING)
    exit_code = models.IntegerField(null=True, blank=True)
    detail = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="unique_attempt_number")]

    def __str__(self):
        return f"attempt {self.number} of job {self.job_id}"


class Checkpoint(models.Model):
    """A checkpoint synced to storage; resume picks the newest one whose bytes match its sha256."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="checkpoints")
    attempt = models.PositiveIntegerField()
    epoch = models.PositiveIntegerField(help_text="Epochs completed when it was saved.")
    kind = models.CharField(max_length=10, choices=CheckpointKind.choices)
    storage_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-epoch", "-id"]

    def __str__(self):
        return f"{self.kind} checkpoint of job {self.job_id} at epoch {self.epoch}"


class ValidationResult(models.Model):
    """What a validation job measured: overall and per-class metrics, confusion matrix, curves."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="validation_result")
    model_version = models.ForeignKey(
        "models_registry.ModelVersion", on_delete=models.PROTECT, related_name="validation_results"
    )
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="validation_results")
    split = models.CharField(max_length=20)
    conf = models.FloatField()
    iou = models.FloatField()
    metrics = models.JSONField(default=dict)
    per_class = models.JSONField(default=list)
    confusion_matrix = models.JSONField(default=dict)
    confusion_matrix_image = models.FileField(max_length=500, blank=True)
    curves = models.JSONField(default=dict)
    gallery = models.JSONField(default=list, help_text="Stored images: ground truth next to predictions.")
    speed_ms = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"validation of {self.model_version_id} on {self.dataset_id}/{self.split}"
