from rest_framework import serializers

from notifications.choices import ALL_EVENTS, WebhookEventType
from notifications.models import Notification, WebhookDelivery, WebhookEndpoint

EVENT_TYPE_CHOICES = [ALL_EVENTS, *WebhookEventType.values]


class WebhookEndpointSerializer(serializers.ModelSerializer):
    """An endpoint as listed and updated: never its secret."""

    event_types = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES), allow_empty=False)

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "event_types", "is_active", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """The create (and rotate-secret) response: the only time the secret is shown."""

    secret = serializers.CharField(read_only=True)

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = [*WebhookEndpointSerializer.Meta.read_only_fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "uuid",
            "endpoint",
            "event_type",
            "event_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "last_duration_ms",
            "response_body_excerpt",
            "attempt_log",
            "redelivery_of",
            "payload",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "link", "data", "read_at", "created_at"]
        read_only_fields = fields


class ReadAllSerializer(serializers.Serializer):
    updated = serializers.IntegerField()
