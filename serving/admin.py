from django.contrib import admin

from serving.models import Deployment


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "owner", "model_version", "status", "host", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "owner__username", "artifact_sha256"]
    readonly_fields = [f.name for f in Deployment._meta.fields if f.name != "shutdown_token"]
    exclude = ["shutdown_token"]

    def has_add_permission(self, request):
        return False
