"""The data set pages of the dashboard: the list with an upload form, and one data set's report and gallery.

The pages are thin: they render what the database holds and let the browser
use the API (session authentication) and the live feed for the rest.
"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from datasets import selectors
from datasets.formats.common import SPLITS


@login_required
def dataset_list_page(request):
    datasets = selectors.dataset_list(user=request.user)[:200]
    return render(request, "datasets/dataset_list.html", {"datasets": datasets})


@login_required
def dataset_detail_page(request, pk):
    dataset = get_object_or_404(selectors.dataset_list(user=request.user), pk=pk)
    context = {
        "dataset": dataset,
        "classes": selectors.dataset_class_list(dataset),
        "statistics": selectors.dataset_statistics(dataset),
        "splits": SPLITS,
    }
    return render(request, "datasets/dataset_detail.html", context)
