import django_filters

from notifications.choices import DeliveryStatus
from notifications.models import Notification, WebhookDelivery


class NotificationFilter(django_filters.FilterSet):
    unread = django_filters.BooleanFilter(
        field_name="read_at", lookup_expr="isnull", label="Only unread (true) or read"
    )

    class Meta:
        model = Notification
        fields = ["unread", "kind"]


class WebhookDeliveryFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_type", "endpoint"]
