from django.apps import AppConfig


class ServingConfig(AppConfig):
    """Deployments of approved model versions and synchronous predict."""

    name = "serving"
