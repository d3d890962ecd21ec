"""The embedded default: one machine, no configuration, DEBUG on."""

from portal.settings.base import *  # noqa: F403
from portal.settings.base import env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "insecure-embedded-default-key-change-me-in-production"  # noqa: F405
