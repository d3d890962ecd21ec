from django.contrib import admin

from notifications.models import Notification, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Operators see who sends where; endpoints are created through the API (the secret is never shown)."""

    list_display = ["id", "owner", "url", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["owner__username", "url"]
    fields = ["owner", "url", "description", "event_types", "is_active", "created_at", "updated_at"]
    readonly_fields = ["owner", "url", "description", "event_types", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log; every field is written by the machine."""

    list_display = ["id", "endpoint", "event_type", "status", "attempts", "last_status_code", "created_at"]
    list_filter = ["status", "event_type"]
    search_fields = ["endpoint__url", "endpoint__owner__username", "event_id", "uuid"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "kind", "title", "read_at", "created_at"]
    list_filter = ["kind"]
    search_fields = ["user__username", "title"]
    readonly_fields = [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
