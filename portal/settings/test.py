"""Test settings: the suite runs on DATABASE_URL when set (CI: PostgreSQL)."""

import tempfile
from pathlib import Path

from portal.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-secret-key"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
_tmp = Path(tempfile.mkdtemp(prefix="portal-test-"))
MEDIA_ROOT = _tmp / "media"
CACHE_DIR = _tmp / "cache"
WORK_DIR = _tmp / "work"
STATIC_ROOT = _tmp / "static"
STATIC_ROOT.mkdir()
if not AWS_STORAGE_BUCKET_NAME:  # noqa: F405
    STORAGES["default"]["OPTIONS"]["location"] = str(MEDIA_ROOT)  # noqa: F405
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_ALWAYS_EAGER = False
