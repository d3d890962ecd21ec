import os

from django.apps import AppConfig


class PortalConfig(AppConfig):
    """Project-level app: bootstrap command, error handling, folders of the embedded mode."""

    name = "portal"

    def ready(self):
        from django.conf import settings

        # The filesystem broker needs its folders before the first publish.
        if settings.CELERY_BROKER_URL.startswith("filesystem://"):
            for key in ("data_folder_in", "control_folder"):
                os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)
