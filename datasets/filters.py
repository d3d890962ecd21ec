import django_filters

from datasets.choices import DatasetFormat, DatasetStatus, DatasetTask
from datasets.models import Dataset


class DatasetFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=DatasetStatus.choices)
    task = django_filters.ChoiceFilter(choices=DatasetTask.choices)
    format = django_filters.ChoiceFilter(choices=DatasetFormat.choices)
    name = django_filters.CharFilter(help_text="Exact name: every version of it.")

    class Meta:
        model = Dataset
        fields = ["status", "task", "format", "name"]
