"""The Celery application; configuration comes from Django settings (CELERY_*)."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _report_worker_device(sender=None, **kwargs):
    """Log which accelerator this worker trains on, so operators see it at start."""
    import logging

    from jobs.devices import worker_device_description

    logging.getLogger("portal.worker").info("worker device: %s", worker_device_description())
