"""The app's settings with their defaults, so it works before portal/settings/base.py names them.

Each value is read from Django settings at call time (tests override them with the `settings`
fixture); see docs/notifications.md for the environment variables that set them.
"""

from django.conf import settings

DEFAULTS = {
    "WEBHOOK_MAX_ATTEMPTS": 6,
    "WEBHOOK_RETRY_BASE_SECONDS": 10,
    "WEBHOOK_RETRY_MAX_SECONDS": 3600,
    "WEBHOOK_TIMEOUT_SECONDS": 10,
    "WEBHOOK_SWEEP_INTERVAL_SECONDS": 60,
}


def notification_setting(name):
    if name == "WEBHOOK_ALLOW_PRIVATE_ADDRESSES":
        # Integrators on the same host are the common embedded case; a server facing the internet
        # must not become a proxy into its own network.
        return getattr(settings, name, getattr(settings, "EMBEDDED_MODE", False))
    return getattr(settings, name, DEFAULTS[name])
