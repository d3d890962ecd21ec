from datetime import timedelta

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Webhooks for integrators, and notifications (live and by email) for users."""

    name = "notifications"

    def ready(self):
        from django.conf import settings

        from notifications.conf import notification_setting

        # Beat reads the schedule after Django is set up; a line in settings of the same name wins.
        settings.CELERY_BEAT_SCHEDULE.setdefault(
            "sweep-webhook-deliveries",
            {
                "task": "notifications.tasks.webhook_deliveries_sweep",
                "schedule": timedelta(seconds=notification_setting("WEBHOOK_SWEEP_INTERVAL_SECONDS")),
            },
        )
