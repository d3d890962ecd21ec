"""Training pages of the dashboard."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def training_list_page(request):
    return HttpResponse("training list")


@login_required
def training_new_page(request):
    return HttpResponse("new training")


@login_required
def training_detail_page(request, pk):
    return HttpResponse(f"training {pk}")
