from rest_framework import serializers

from serving.models import Deployment, Endpoint


class DeploymentSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="model_version.registered_model.name", read_only=True)
    endpoint = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "name",
            "endpoint",
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


class EndpointSerializer(serializers.ModelSerializer):
    registered_model = serializers.CharField(source="registered_model.name", read_only=True)
    current_deployment = DeploymentSerializer(read_only=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = Endpoint
        fields = ["slug", "registered_model", "status", "current_deployment", "switched_at", "created_at"]
        read_only_fields = fields

    def get_status(self, endpoint):
        current = endpoint.current_deployment
        return current.status if current else "starting"


class DeploymentCreateSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class EndpointSwitchSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()


class PredictSerializer(serializers.Serializer):
    image = serializers.FileField()
    conf = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    iou = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    max_det = serializers.IntegerField(required=False, min_value=1, max_value=10000)
    classes = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False)
    annotated = serializers.BooleanField(required=False, default=False)


class UsageSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(required=False, min_value=1, max_value=7 * 24 * 60)
