from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from models_registry.choices import ReviewStatus
from serving.models import Deployment, DeploymentUsage, Endpoint
from serving.usage import histogram_percentile


def deployment_list(*, user):
    queryset = Deployment.objects.select_related("model_version__registered_model", "endpoint")
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)


def endpoint_list(*, user):
    queryset = Endpoint.objects.select_related(
        "registered_model", "current_deployment__model_version__registered_model"
    )
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)


def endpoint_current_deployment(*, endpoint_id):
    """The deployment the endpoint points to now, read fresh (a switch may just have happened)."""
    return (
        Deployment.objects.filter(pk__in=Endpoint.objects.filter(pk=endpoint_id).values("current_deployment"))
        .select_related("model_version")
        .first()
    )


def endpoint_previous_version(*, endpoint):
    """The newest approved version the endpoint served before its current deployment, if any."""
    current = endpoint.current_deployment
    history = endpoint.deployments.filter(started_at__isnull=False).select_related("model_version")
    if current is not None:
        history = history.exclude(model_version_id=current.model_version_id).filter(
            started_at__lte=current.started_at or timezone.now()
        )
    for deployment in history.order_by("-started_at", "-id"):
        if deployment.model_version.review_status == ReviewStatus.APPROVED:
            return deployment.model_version
    return None


def deployment_usage_summary(*, deployment, minutes=None):
    """Requests, errors and latency percentiles over the last `minutes`, plus the per-minute rows."""
    minutes = minutes or settings.SERVING_USAGE_WINDOW_MINUTES
    since = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    rows = list(DeploymentUsage.objects.filter(deployment=deployment, minute__gte=since).order_by("minute"))
    histogram = []
    for row in rows:
        histogram.extend([0] * (len(row.latency_histogram) - len(histogram)))
        for index, count in enumerate(row.latency_histogram):
            histogram[index] += count
    requests = sum(row.request_count for row in rows)
    return {
        "window_minutes": minutes,
        "request_count": requests,
        "error_count": sum(row.error_count for row in rows),
        "latency_ms": {
            "mean": round(sum(row.latency_total_ms for row in rows) / requests, 3) if requests else None,
            "p50": histogram_percentile(histogram, 0.50),
            "p95": histogram_percentile(histogram, 0.95),
            "p99": histogram_percentile(histogram, 0.99),
        },
        "minutes": [
            {"minute": row.minute, "request_count": row.request_count, "error_count": row.error_count} for row in rows
        ],
    }


def inference_job_list(*, user):
    from jobs.choices import JobKind
    from jobs.models import Job

    queryset = Job.objects.filter(kind=JobKind.INFER).select_related("model_version__registered_model")
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)


def inference_result_list(*, job):
    return job.inference_results.order_by("index")


def deployable_version_list(*, user, registered_model=None):
    """Approved versions the user may deploy: their own (staff: any), newest first."""
    from models_registry.models import ModelVersion

    queryset = ModelVersion.objects.filter(review_status=ReviewStatus.APPROVED).select_related("registered_model")
    if not user.is_staff:
        queryset = queryset.filter(created_by=user)
    if registered_model is not None:
        queryset = queryset.filter(registered_model=registered_model)
    return queryset.order_by("registered_model__name", "-number")


def endpoint_usage_counts(*, endpoints, minutes=None):
    """Requests and errors per endpoint id over the last `minutes`, summed over all its deployments."""
    from django.db.models import Sum

    minutes = minutes or settings.SERVING_USAGE_WINDOW_MINUTES
    since = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    rows = (
        DeploymentUsage.objects.filter(deployment__endpoint__in=endpoints, minute__gte=since)
        .values("deployment__endpoint")
        .annotate(requests=Sum("request_count"), errors=Sum("error_count"))
    )
    return {row["deployment__endpoint"]: {"requests": row["requests"], "errors": row["errors"]} for row in rows}


def endpoint_deployment_history(*, endpoint, limit=20):
    """The endpoint's newest deployments, starting ones included (the endpoint points to them once active)."""
    return endpoint.deployments.select_related("model_version").order_by("-created_at", "-id")[:limit]
