"""The portal project: settings, routing, the Celery app and the API router."""

from portal.celery import app as celery_app

__all__ = ["celery_app"]
