"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from datasets.routing import websocket_urlpatterns as dataset_websocket_urlpatterns  # noqa: E402
from jobs.routing import websocket_urlpatterns  # noqa: E402
from notifications.routing import websocket_urlpatterns as notification_websocket_urlpatterns  # noqa: E402
from portal.ws_auth import TokenAuthMiddleware  # noqa: E402
from serving.fast_path import PredictFastPath  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": PredictFastPath(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                TokenAuthMiddleware(
                    URLRouter(
                        websocket_urlpatterns + dataset_websocket_urlpatterns + notification_websocket_urlpatterns
                    )
                )
            )
        ),
    }
)
