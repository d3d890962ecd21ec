from rest_framework import serializers

from serving.models import Deployment


class DeploymentSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="model_version.registered_model.name", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "model_version",
            "registered_model",
            "artifact_sha256",
            "status",
            "error",
            "created_at",
            "started_at",
            "stopped_at",
        ]
        read_only_fields = fields


class DeploymentCreateSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class PredictSerializer(serializers.Serializer):
    image = serializers.FileField()
    conf = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    iou = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    max_det = serializers.IntegerField(required=False, min_value=1, max_value=10000)
    classes = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False)
