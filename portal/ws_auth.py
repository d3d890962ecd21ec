"""WebSocket authentication by `Authorization: Token <key>`, besides the session cookie."""

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware


@database_sync_to_async
def _user_for_token(key):
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return None
    return token.user


class TokenAuthMiddleware(BaseMiddleware):
    """Sets scope['user'] from a DRF token header when one is sent; else leaves the session's user."""

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers", []))
        value = headers.get(b"authorization", b"").decode("latin-1")
        if value.startswith("Token "):
            user = await _user_for_token(value.removeprefix("Token ").strip())
            if user is not None:
                scope = dict(scope, user=user)
            else:
                from django.contrib.auth.models import AnonymousUser

                scope = dict(scope, user=AnonymousUser())
        return await super().__call__(scope, receive, send)
