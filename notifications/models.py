import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from notifications.choices import ALL_EVENTS, DeliveryStatus, NotificationKind


class WebhookEndpoint(models.Model):
    """An integrator's URL that receives signed POSTs for the events it subscribes to.

    The secret is kept in clear: signing needs it. It is shown once, in the create response.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_endpoints")
    # Not a URLField: Django's URL validator refuses single-label hosts (`http://hooks:8080/`),
    # common on a private network; services.webhook_url_check decides instead.
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    event_types = models.JSONField(default=list, help_text="Event types from the catalogue, or ['*'] for all.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.url

    def subscribes_to(self, event_type):
        return ALL_EVENTS in self.event_types or event_type in self.event_types


class WebhookDelivery(models.Model):
    """One event sent (or to be sent) to one endpoint, with the outcome of its latest attempt.

    `next_attempt_at` is when a worker may next try it; while an attempt is in flight it holds
    the attempt's lease, so a duplicate task message finds nothing to claim.
    """

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="X-Portal-Delivery.")
    event_type = models.CharField(max_length=50, db_index=True)
    event_id = models.UUIDField(help_text="The event's id, the same in every delivery (and redelivery) of it.")
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    response_body_excerpt = models.TextField(blank=True)
    attempt_log = models.JSONField(default=list, blank=True, help_text="One entry per attempt, oldest first.")
    redelivery_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="redeliveries"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self):
        return f"{self.event_type} to {self.endpoint_id} ({self.status})"


class Notification(models.Model):
    """A message for one user, shown live in the dashboard until it is read."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=50, choices=NotificationKind.choices)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    link = models.URLField(max_length=2000, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self):
        return self.title

    def as_message(self):
        return {
            "id": self.pk,
            "kind": self.kind,
            "title": self.title,
            "body": self.body,
            "link": self.link,
            "data": self.data,
            "read_at": self.read_at.isoformat() if self.read_at else None,
            "created_at": self.created_at.isoformat(),
        }
