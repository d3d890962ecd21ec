"""The predict fast path: token-authenticated predict requests skip Django's middleware stack.

Under daphne, a request through Django's ASGI handler pays a thread hop for each
middleware and one for the sync view (all views share one thread), which was most
of the milliseconds the portal added to a prediction (docs/serving.md has the
figures). This ASGI app sits in front of Django and answers
``POST /api/v1/{endpoints/<slug>,deployments/<id>}/predict/`` carrying an
``Authorization: Token`` header itself: one hop to a worker thread (not the shared
one, so predictions run side by side), the same host check, token check, scoping,
serializer and services as the DRF view, and usage recorded after the answer is
sent. Anything it does not answer itself (session auth, a bad token, an unknown
deployment, a form the serializer refuses) goes to Django unchanged, body
included, so every error keeps the exact shape and status of the API.
"""

import io
import json
import logging
import re

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest
from django.db import close_old_connections
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import AuthenticationFailed

from portal.errors import ApplicationError

logger = logging.getLogger(__name__)

PREDICT_PATHS = (
    ("endpoint", re.compile(r"^/api/v1/endpoints/(?P<key>[-\w]+)/predict/$")),
    ("deployment", re.compile(r"^/api/v1/deployments/(?P<key>\d+)/predict/$")),
)
# Headers Django's security middleware would have added to an API answer.
SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


def _predict_route(scope):
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    for kind, pattern in PREDICT_PATHS:
        match = pattern.match(scope["path"])
        if match:
            return kind, match["key"]
    return None


def _token(scope):
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return key.strip() if scheme.lower() == "token" and key.strip() else None
    return None


def _content_length(scope):
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body, receive):
    """A receive() that hands Django the body this app already read, then the client's own messages.

    Django listens for a disconnect while it answers: only the real one may reach it.
    """
    sent = False

    async def replayed():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class PredictFastPath:
    """Wraps Django's ASGI app; see the module's docstring."""

    def __init__(self, django_app):
        self.django_app = django_app
        # The body must fit in memory here: the image limit plus room for the form around it.
        self.max_body = settings.PREDICT_MAX_IMAGE_BYTES + 64 * 1024

    async def __call__(self, scope, receive, send):
        route = _predict_route(scope)
        key = _token(scope) if route else None
        length = _content_length(scope) if key else None
        if key is None or length is None or length > self.max_body:
            return await self.django_app(scope, receive, send)
        body = await self._read_body(receive)
        if body is None:  # the client went away
            return None
        answer = await sync_to_async(self._answer, thread_sensitive=False)(scope, body, route, key)
        if answer is None:
            return await self.django_app(scope, _replay(body, receive), send)
        status, payload, headers, after = answer
        data = json.dumps(payload).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            *SECURITY_HEADERS,
            *headers,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        if after is not None:  # bookkeeping after the client has its answer
            await sync_to_async(self._after, thread_sensitive=False)(after)
        return None

    @staticmethod
    async def _read_body(receive):
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    def _answer(self, scope, body, route, key):
        """(status, payload, extra headers, deferred work), or None to let Django answer."""
        from rest_framework.authentication import TokenAuthentication

        from portal.api_errors import application_error_answer
        from serving import selectors
        from serving.api.serializers import PredictSerializer
        from serving.api.views import predict_arguments
        from serving.predict import deployment_predict, endpoint_predict

        close_old_connections()
        try:
            request = ASGIRequest(scope, io.BytesIO(body))
            request.get_host()  # ALLOWED_HOSTS, as CommonMiddleware checks it
            user, _ = TokenAuthentication().authenticate_credentials(key)
            kind, lookup = route
            if kind == "endpoint":
                target = selectors.endpoint_list(user=user).filter(slug=lookup).first()
            else:
                target = selectors.deployment_list(user=user).filter(pk=lookup).first()
            if target is None:
                return None
            data = request.POST.copy()
            data.update(request.FILES)
            serializer = PredictSerializer(data=data)
            if not serializer.is_valid():
                return None
            deferred = []
            try:
                arguments = {**predict_arguments(serializer.validated_data), "defer": deferred.append}
                if kind == "endpoint":
                    result = endpoint_predict(endpoint=target, **arguments)
                else:
                    result = deployment_predict(deployment=target, **arguments)
            except ApplicationError as exc:
                status, payload, headers = application_error_answer(exc)
                encoded = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
                return status, payload, encoded, deferred or None
            return 200, result, [], deferred or None
        except (AuthenticationFailed, DisallowedHost, RequestDataTooBig, MultiPartParserError):
            return None
        finally:
            close_old_connections()

    @staticmethod
    def _after(deferred):
        close_old_connections()
        try:
            for work in deferred:
                try:
                    work()
                except Exception:  # bookkeeping never fails a prediction that was answered
                    logger.exception("deferred predict bookkeeping failed")
        finally:
            close_old_connections()
