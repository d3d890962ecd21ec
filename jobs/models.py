from django.conf import settings
from django.db import models

from jobs.choices import EventKind, JobStatus


class TrainingJob(models.Model):
    """One training run of a model on a data set.

    `fencing_token` grows with every claim; callbacks must carry the current one,
    so a writer from an earlier attempt (a worker presumed dead) cannot change
    the job any more. `lease_until` is renewed by the launcher while the trainer
    lives; the reaper re-queues jobs whose lease lapsed.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="training_jobs")
    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="training_jobs")
    config = models.JSONField(default=dict)
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
        return f"Training job #{self.pk} ({self.status})"

    @property
    def group_name(self):
        return f"job-{self.pk}"


class JobEvent(models.Model):
    """An append-only record of what happened to a job; the live feed replays these."""

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="events")
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
