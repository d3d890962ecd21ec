from django.contrib import admin

from jobs.models import Job, JobEvent


class JobEventInline(admin.TabularInline):
    model = JobEvent
    fields = ["created_at", "kind", "attempt", "payload"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-id"]

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(kind="progress")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Operators watch jobs here; every field is written by the machine."""

    list_display = [
        "id",
        "owner",
        "dataset",
        "status",
        "epoch",
        "epochs",
        "progress",
        "attempt",
        "worker",
        "created_at",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["owner__username", "dataset__name", "worker"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Job._meta.fields if f.name != "callback_token_hash"]
    exclude = ["callback_token_hash"]
    inlines = [JobEventInline]

    def has_add_permission(self, request):
        return False
