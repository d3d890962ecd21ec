from django.apps import AppConfig


class ModelsRegistryConfig(AppConfig):
    """Registered models, their versions, and the review gate."""

    name = "models_registry"
    verbose_name = "Model registry"
