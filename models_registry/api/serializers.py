from rest_framework import serializers

from models_registry.models import ModelArtifact, ModelVersion, ModelVersionEvent, RegisteredModel


class ModelVersionEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", default=None)

    class Meta:
        model = ModelVersionEvent
        fields = ["kind", "actor", "reason", "created_at"]


class ModelArtifactSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelArtifact
        fields = ["format", "sha256", "size", "job", "created_at"]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    status = serializers.CharField(source="review_status")
    registered_model = serializers.CharField(source="registered_model.name")
    registered_model_slug = serializers.CharField(source="registered_model.slug")
    classes = serializers.JSONField(source="registered_model.classes")
    created_by = serializers.CharField(source="created_by.username")
    reviewer = serializers.CharField(source="reviewer.username", default=None)
    events = ModelVersionEventSerializer(many=True)
    exports = ModelArtifactSerializer(many=True)

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
            "exports",
        ]
        read_only_fields = fields


class ApproveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField()


class ExportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ModelArtifact.Format.choices)


class RegisteredModelSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = RegisteredModel
        fields = ["id", "name", "slug", "owner", "task", "classes", "min_map50", "max_class_regression", "created_at"]
        read_only_fields = ["id", "name", "slug", "owner", "task", "classes", "created_at"]
        extra_kwargs = {
            "min_map50": {"min_value": 0.0, "max_value": 1.0},
            "max_class_regression": {"min_value": 0.0, "max_value": 1.0},
        }
