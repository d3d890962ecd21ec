from django.db import models


class WebhookEventType(models.TextChoices):
    """The catalogue of events an endpoint can subscribe to (`*` subscribes to all of them)."""

    MODEL_VERSION_CREATED = "model_version.created", "A model version was registered"
    MODEL_VERSION_APPROVED = "model_version.approved", "A model version was approved"
    MODEL_VERSION_REJECTED = "model_version.rejected", "A model version was rejected"
    MODEL_VERSION_DEPLOYED = "model_version.deployed", "A model version was deployed"
    MODEL_VERSION_UNDEPLOYED = "model_version.undeployed", "A model version was undeployed"
    MODEL_VERSION_ARCHIVED = "model_version.archived", "A model version was archived"
    JOB_COMPLETED = "job.completed", "A job completed"
    JOB_FAILED = "job.failed", "A job failed"
    JOB_CANCELLED = "job.cancelled", "A job was cancelled"


ALL_EVENTS = "*"
# Sent only on request (POST /webhooks/{id}/ping/), whatever the endpoint subscribes to.
PING_EVENT = "ping"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class NotificationKind(models.TextChoices):
    MODEL_VERSION_APPROVED = "model_version.approved", "Model version approved"
    MODEL_VERSION_REJECTED = "model_version.rejected", "Model version rejected"
