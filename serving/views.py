"""The deployment and inference pages of the dashboard.

The pages render what the database holds; deploying, switching, stopping, predicting and starting
inference jobs go through the API from the browser (session authentication), and the pages follow
deployments by polling the API and inference jobs through the job's live feed.
"""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from jobs.choices import TERMINAL_STATUSES
from serving import selectors

# Results per page of an inference job's gallery (each one is an image request).
RESULTS_PER_PAGE = 24


def _predict_url(request, endpoint):
    return request.build_absolute_uri(reverse("endpoint-predict", kwargs={"slug": endpoint.slug}))


@login_required
def deployment_list_page(request):
    endpoints = list(selectors.endpoint_list(user=request.user)[:200])
    counts = selectors.endpoint_usage_counts(endpoints=endpoints)
    for endpoint in endpoints:
        # Until its first deployment is active an endpoint points nowhere: show the newest one's state.
        endpoint.shown_deployment = endpoint.current_deployment or next(
            iter(selectors.endpoint_deployment_history(endpoint=endpoint, limit=1)), None
        )
        endpoint.predict_url = _predict_url(request, endpoint)
        endpoint.usage = counts.get(endpoint.pk, {"requests": 0, "errors": 0})
    context = {
        "endpoints": endpoints,
        "versions": selectors.deployable_version_list(user=request.user),
    }
    return render(request, "deployments/deployment_list.html", context)


@login_required
def endpoint_detail_page(request, slug):
    endpoint = get_object_or_404(selectors.endpoint_list(user=request.user), slug=slug)
    current = endpoint.current_deployment
    history = list(selectors.endpoint_deployment_history(endpoint=endpoint))
    previous = selectors.endpoint_previous_version(endpoint=endpoint)
    state = {
        "slug": endpoint.slug,
        "current": current.pk if current else None,
        "deployments": [
            {"id": d.pk, "status": d.status, "model_version": d.model_version_id, "number": d.model_version.number}
            for d in history
        ],
        "latest_version": history[0].model_version_id if history else None,
    }
    context = {
        "endpoint": endpoint,
        "current": current,
        "history": history,
        "previous": previous,
        "versions": selectors.deployable_version_list(user=request.user, registered_model=endpoint.registered_model),
        "usage": selectors.deployment_usage_summary(deployment=current) if current else None,
        "classes": list(enumerate(endpoint.registered_model.classes or [])),
        "predict_url": _predict_url(request, endpoint),
        "state": state,
    }
    return render(request, "deployments/endpoint_detail.html", context)


@login_required
def inference_list_page(request):
    jobs = list(selectors.inference_job_list(user=request.user)[:200])
    for job in jobs:
        job.image_count = len(job.config.get("inputs", []))
    context = {"jobs": jobs, "versions": selectors.deployable_version_list(user=request.user)}
    return render(request, "inference/inference_list.html", context)


@login_required
def inference_detail_page(request, pk):
    job = get_object_or_404(selectors.inference_job_list(user=request.user), pk=pk)
    results = selectors.inference_result_list(job=job)
    page = Paginator(results, RESULTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "job": job,
        "image_count": len(job.config.get("inputs", [])),
        "images_done": results.count(),
        "options": {key: value for key, value in job.config.items() if key != "inputs"},
        "page": page,
        "finished": job.status in TERMINAL_STATUSES,
    }
    return render(request, "inference/inference_detail.html", context)
