from django.contrib import admin

from serving import selectors
from serving.models import Deployment, Endpoint, InferenceResult


def _usage_line(summary):
    latency = summary["latency_ms"]
    if not summary["request_count"]:
        return "no requests"
    return (
        f"{summary['request_count']} req, {summary['error_count']} err, "
        f"p50 {latency['p50']:g} / p95 {latency['p95']:g} / p99 {latency['p99']:g} ms"
    )


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "endpoint", "owner", "model_version", "status", "host", "usage", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "owner__username", "artifact_sha256", "endpoint__slug"]
    readonly_fields = [f.name for f in Deployment._meta.fields if f.name != "shutdown_token"] + ["usage"]
    exclude = ["shutdown_token"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Usage (recent window)")
    def usage(self, deployment):
        return _usage_line(selectors.deployment_usage_summary(deployment=deployment))


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["slug", "registered_model", "owner", "current_deployment", "switched_at"]
    search_fields = ["slug", "owner__username"]
    readonly_fields = [f.name for f in Endpoint._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(InferenceResult)
class InferenceResultAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "index", "name", "inference_time_ms", "created_at"]
    search_fields = ["name", "job__id"]
    readonly_fields = [f.name for f in InferenceResult._meta.fields]

    def has_add_permission(self, request):
        return False
