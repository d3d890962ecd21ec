"""Production: DEBUG off, secrets required, HTTPS-friendly defaults."""

from django.core.exceptions import ImproperlyConfigured

from portal.settings.base import *  # noqa: F403
from portal.settings.base import env

DEBUG = env.bool("DEBUG", default=False)
if not DEBUG and not SECRET_KEY:  # noqa: F405
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
