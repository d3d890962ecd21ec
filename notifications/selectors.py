"""Reads for webhooks and notifications, always scoped to the requesting user.

Unlike data sets and jobs, staff see only their own rows here too: an endpoint's URL and its
delivery payloads are an integrator's private configuration (the admin shows them to superusers).
"""

from notifications.models import Notification, WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, user):
    return WebhookEndpoint.objects.filter(owner=user)


def webhook_delivery_list(*, user, endpoint=None):
    queryset = WebhookDelivery.objects.filter(endpoint__owner=user).select_related("endpoint")
    if endpoint is not None:
        queryset = queryset.filter(endpoint=endpoint)
    return queryset


def notification_list(*, user, unread=None):
    queryset = Notification.objects.filter(user=user)
    if unread is not None:
        queryset = queryset.filter(read_at__isnull=unread)
    return queryset


def notification_snapshot(*, user, limit=50):
    """The live feed's first message: the user's unread notifications, newest first."""
    unread = notification_list(user=user, unread=True)
    return {
        "type": "snapshot",
        "unread_count": unread.count(),
        "notifications": [notification.as_message() for notification in unread[:limit]],
    }
