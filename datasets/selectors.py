"""Reads for data sets, always scoped to the requesting user."""

from datasets.models import Dataset


def dataset_list(*, user):
    queryset = Dataset.objects.select_related("owner")
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)
