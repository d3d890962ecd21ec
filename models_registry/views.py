"""Model pages of the dashboard."""

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse


@login_required
def model_list_page(request):
    return HttpResponse("models")


@login_required
def model_detail_page(request, pk):
    return HttpResponse(f"model {pk}")
