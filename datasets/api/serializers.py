from django.urls import reverse
from rest_framework import serializers

from datasets.choices import DatasetTask
from datasets.models import Dataset, DatasetFile
from datasets.selectors import dataset_class_list

SUMMARY_FIELDS = [
    "id",
    "name",
    "version",
    "status",
    "stage",
    "progress",
    "task",
    "format",
    "classes",
    "num_images",
    "errors_count",
    "warnings_count",
    "content_sha256",
    "archive_size",
    "auto_train",
    "created_at",
    "validated_at",
]


def _absolute(request, name, **kwargs):
    path = reverse(name, kwargs=kwargs)
    return request.build_absolute_uri(path) if request is not None else path


class DatasetListSerializer(serializers.ModelSerializer):
    """A data set in a list: its state and counts, not its full report."""

    errors_count = serializers.SerializerMethodField()
    warnings_count = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = SUMMARY_FIELDS
        read_only_fields = fields

    def get_errors_count(self, dataset) -> int:
        return (dataset.stats or {}).get("errors_count", len(dataset.errors))

    def get_warnings_count(self, dataset) -> int:
        return (dataset.stats or {}).get("warnings_count", len(dataset.warnings))


class DatasetSerializer(DatasetListSerializer):
    """A data set with its validation report: every problem with file, line and reason."""

    class_list = serializers.SerializerMethodField(help_text="Classes with their preview colours.")
    links = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            *SUMMARY_FIELDS,
            "class_list",
            "stats",
            "errors",
            "warnings",
            "options",
            "layout_sha256",
            "links",
        ]
        read_only_fields = fields

    def get_class_list(self, dataset) -> list[dict]:
        return dataset_class_list(dataset)

    def get_links(self, dataset) -> dict:
        request = self.context.get("request")
        return {
            name: _absolute(request, f"dataset-{name}", pk=dataset.pk)
            for name in ("statistics", "files", "gallery", "download")
        }


class DatasetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    file = serializers.FileField(
        help_text="A zip: Ultralytics YOLO (split or flat), COCO instances JSON with its images, or classification "
        "folders. See docs/datasets.md."
    )
    val_ratio = serializers.FloatField(
        required=False, min_value=0.01, max_value=0.9, help_text="Share held out for val when the upload has no split."
    )
    split_seed = serializers.IntegerField(required=False, min_value=0, help_text="Seed of that split (default 0).")
    task = serializers.ChoiceField(
        choices=DatasetTask.choices, required=False, help_text="Force a task; detected from the upload otherwise."
    )
    auto_train = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="Start training when ready (default: the server's)."
    )


class DatasetFileSerializer(serializers.ModelSerializer):
    """One file of the upload: what it is, whether it reaches training, and its problems."""

    classes = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetFile
        fields = [
            "id",
            "path",
            "role",
            "split",
            "status",
            "classes",
            "instances",
            "width",
            "height",
            "problems",
            "thumbnail_url",
        ]
        read_only_fields = fields

    def get_classes(self, record) -> list[str]:
        names = self.context["dataset"].classes
        return [names[i] if i < len(names) else str(i) for i in record.class_indexes]

    def get_thumbnail_url(self, record) -> str | None:
        if not record.preview:
            return None
        return _absolute(self.context.get("request"), "dataset-thumbnail", pk=record.dataset_id, file_id=record.pk)


class GalleryItemSerializer(DatasetFileSerializer):
    class Meta(DatasetFileSerializer.Meta):
        fields = ["id", "path", "split", "status", "classes", "instances", "width", "height", "thumbnail_url"]
        read_only_fields = fields
