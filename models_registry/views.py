"""The model pages of the dashboard: registered models with their versions, one model's versions and a comparison.

The pages only show the review state: reviewers approve and reject in the admin (or the API),
and deploying goes through the deployments API from the browser.
"""

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, render

from models_registry import selectors
from models_registry.choices import ReviewStatus
from models_registry.models import ModelVersion
from serving.selectors import endpoint_list


def _versions_queryset():
    return ModelVersion.objects.select_related("reviewer", "training_job").order_by("-number")


def _with_key_metrics(versions):
    for version in versions:
        version.key_metrics = selectors.model_version_key_metrics(version=version)
    return versions


@login_required
def model_list_page(request):
    models = list(
        selectors.registered_model_list(user=request.user).prefetch_related(
            Prefetch("versions", queryset=_versions_queryset())
        )[:200]
    )
    for model in models:
        _with_key_metrics(model.versions.all())
    return render(request, "models/model_list.html", {"models": models})


def _chosen_version(versions, value):
    try:
        wanted = int(value)
    except (TypeError, ValueError):
        return None
    return next((version for version in versions if version.pk == wanted), None)


@login_required
def model_detail_page(request, pk):
    model = get_object_or_404(selectors.registered_model_list(user=request.user), pk=pk)
    versions = _with_key_metrics(list(_versions_queryset().filter(registered_model=model)))
    for version in versions:
        version.per_class = selectors.model_version_per_class(version=version)
        version.can_deploy = version.review_status == ReviewStatus.APPROVED and (
            version.created_by_id == request.user.pk or request.user.is_staff
        )
    version_a = _chosen_version(versions, request.GET.get("a"))
    version_b = _chosen_version(versions, request.GET.get("b"))
    comparison = None
    if version_a and version_b:
        comparison = selectors.model_version_comparison(a=version_a, b=version_b)
    context = {
        "model": model,
        "versions": versions,
        "endpoint": endpoint_list(user=request.user).filter(registered_model=model).first(),
        "comparison": comparison,
        "compare_requested": "a" in request.GET or "b" in request.GET,
        # Without a choice yet, offer the two newest versions: the previous one against the newest.
        "selected_a": version_a.pk if version_a else (versions[1].pk if len(versions) > 1 else None),
        "selected_b": version_b.pk if version_b else (versions[0].pk if versions else None),
    }
    return render(request, "models/model_detail.html", context)
