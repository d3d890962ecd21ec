from rest_framework import serializers

from models_registry.models import ModelVersion, ModelVersionEvent


class ModelVersionEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None)

    class Meta:
        model = ModelVersionEvent
        fields = ["kind", "actor", "reason", "created_at"]


class ModelVersionSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="review_status")
    registered_model = serializers.CharField(source="registered_model.name")
    registered_model_slug = serializers.CharField(source="registered_model.slug")
    classes = serializers.JSONField(source="registered_model.classes")
    created_by = serializers.CharField(source="created_by.username")
    reviewer = serializers.CharField(source="reviewer.username", default=None)
    events = ModelVersionEventSerializer(many=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "registered_model",
            "registered_model_slug",
            "number",
            "status",
            "metrics",
            "classes",
            "training_job",
            "dataset",
            "created_by",
            "artifact_sha256",
            "artifact_size",
            "reviewer",
            "reviewed_at",
            "review_note",
            "created_at",
            "events",
        ]
        read_only_fields = fields


class ApproveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField()
