"""factory_boy factories for webhook and notification rows."""

import uuid

import factory
from django.utils import timezone

from notifications.models import Notification, WebhookDelivery, WebhookEndpoint
from notifications.services.webhooks import webhook_secret_generate
from tests.factories import UserFactory


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEndpoint

    owner = factory.SubFactory(UserFactory)
    url = factory.Sequence(lambda n: f"http://127.0.0.1:9/hook-{n}")
    secret = factory.LazyFunction(webhook_secret_generate)
    event_types = factory.LazyFunction(lambda: ["*"])


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    """A delivery due now, as webhook_event_emit writes it."""

    class Meta:
        model = WebhookDelivery

    endpoint = factory.SubFactory(WebhookEndpointFactory)
    event_type = "model_version.created"
    event_id = factory.LazyFunction(uuid.uuid4)
    payload = factory.LazyAttribute(lambda d: {"id": str(d.event_id), "event": d.event_type})
    next_attempt_at = factory.LazyFunction(timezone.now)


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification

    user = factory.SubFactory(UserFactory)
    kind = "model_version.approved"
    title = factory.Sequence(lambda n: f"model {n} v1 was approved")
