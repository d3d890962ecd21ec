"""Deployment and inference pages of the dashboard."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def deployment_list_page(request):
    return HttpResponse("deployments")


@login_required
def endpoint_detail_page(request, slug):
    return HttpResponse(f"endpoint {slug}")


@login_required
def inference_list_page(request):
    return HttpResponse("inference")


@login_required
def inference_detail_page(request, pk):
    return HttpResponse(f"inference {pk}")
