"""The dashboard's home page: what needs attention, across the sections."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from datasets import selectors as dataset_selectors
from jobs import selectors as job_selectors
from jobs.choices import JobKind, JobStatus
from models_registry import selectors as model_selectors
from models_registry.choices import ReviewStatus
from serving import selectors as serving_selectors
from serving.choices import DeploymentStatus


@login_required
def home_page(request):
    user = request.user
    jobs = job_selectors.job_list(user=user, kind=JobKind.TRAIN)
    versions = model_selectors.model_version_list(user=user)
    context = {
        "dataset_count": dataset_selectors.dataset_list(user=user).count(),
        "running_count": jobs.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).count(),
        "pending_count": versions.filter(review_status=ReviewStatus.PENDING_REVIEW).count(),
        "active_count": serving_selectors.deployment_list(user=user).filter(status=DeploymentStatus.ACTIVE).count(),
        "recent_jobs": jobs.select_related("dataset").order_by("-created_at")[:8],
        "recent_versions": versions.select_related("registered_model").order_by("-created_at")[:8],
    }
    return render(request, "portal/home.html", context)
