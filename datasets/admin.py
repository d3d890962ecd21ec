from django.contrib import admin

from datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "status", "task", "num_images", "created_at"]
    list_filter = ["status", "task"]
    search_fields = ["name", "owner__username", "content_sha256"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Dataset._meta.fields]

    def has_add_permission(self, request):
        return False
