from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    """Image data sets: upload, safe extraction, validation, storage."""

    name = "datasets"
