"""A user's notifications: stored rows, pushed live to the user's Channels group after commit."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from notifications.models import Notification

logger = logging.getLogger(__name__)


def user_group_name(user_id):
    return f"user-{user_id}"


def notification_create(*, user, kind, title, body="", link="", data=None):
    """Store a notification and push it to the user's open dashboards once the transaction commits."""
    notification = Notification.objects.create(
        user=user, kind=kind, title=title[:300], body=body, link=link, data=data or {}
    )
    transaction.on_commit(lambda: notification_broadcast(notification=notification))
    return notification


def notification_broadcast(*, notification):
    """Best effort: the row is the record, and a dashboard that missed this resyncs from it."""
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(
            user_group_name(notification.user_id),
            {"type": "notification.created", "message": notification.as_message()},
        )
    except Exception:
        logger.warning("could not broadcast notification %s", notification.pk, exc_info=True)


def notification_mark_read(*, notification):
    Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=timezone.now())
    notification.refresh_from_db()
    return notification


def notifications_mark_all_read(*, user):
    """Mark every unread notification of the user read; returns how many were."""
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
