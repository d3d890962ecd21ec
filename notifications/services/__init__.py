"""Writes for webhooks and notifications; the registry and jobs call the two publishers."""

from notifications.services.inbox import (
    notification_broadcast,
    notification_create,
    notification_mark_read,
    notifications_mark_all_read,
    user_group_name,
)
from notifications.services.publish import job_event_publish, model_version_review_notify, registry_event_publish
from notifications.services.webhooks import (
    webhook_deliveries_sweep,
    webhook_delivery_attempt,
    webhook_delivery_enqueue,
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_ping,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
    webhook_event_emit,
    webhook_retry_delay,
)

__all__ = [
    "job_event_publish",
    "model_version_review_notify",
    "notification_broadcast",
    "notification_create",
    "notification_mark_read",
    "notifications_mark_all_read",
    "registry_event_publish",
    "user_group_name",
    "webhook_deliveries_sweep",
    "webhook_delivery_attempt",
    "webhook_delivery_enqueue",
    "webhook_delivery_redeliver",
    "webhook_endpoint_create",
    "webhook_endpoint_delete",
    "webhook_endpoint_ping",
    "webhook_endpoint_rotate_secret",
    "webhook_endpoint_update",
    "webhook_event_emit",
    "webhook_retry_delay",
]
