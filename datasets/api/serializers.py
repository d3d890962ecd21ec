from rest_framework import serializers

from datasets.models import Dataset


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "status",
            "task",
            "classes",
            "num_images",
            "stats",
            "errors",
            "content_sha256",
            "archive_size",
            "created_at",
            "validated_at",
        ]
        read_only_fields = fields


class DatasetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    file = serializers.FileField(help_text="A zip in the Ultralytics detection layout.")
