from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from models_registry.selectors import model_version_list
from portal.errors import ApplicationError
from serving import selectors, services
from serving.api.serializers import DeploymentCreateSerializer, DeploymentSerializer, PredictSerializer
from serving.predict import deployment_predict


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Deployments of approved model versions, and synchronous predict."""

    serializer_class = DeploymentSerializer
    filterset_fields = ["status"]
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.deployment_list(user=self.request.user)

    @extend_schema(request=DeploymentCreateSerializer, responses={202: DeploymentSerializer})
    def create(self, request):
        serializer = DeploymentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = model_version_list(user=request.user).filter(pk=serializer.validated_data["model_version"]).first()
        if version is None:
            raise ApplicationError("Unknown model version.", fields={"model_version": ["Unknown model version."]})
        deployment = services.deployment_create(
            owner=request.user, model_version=version, name=serializer.validated_data["name"]
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        deployment = services.deployment_stop(deployment=self.get_object())
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request={"multipart/form-data": PredictSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    def predict(self, request, pk=None):
        deployment = self.get_object()
        serializer = PredictSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = deployment_predict(
            deployment=deployment,
            data=data["image"].read(),
            conf=data.get("conf"),
            iou=data.get("iou"),
            max_det=data.get("max_det"),
            classes=data.get("classes"),
        )
        return Response(result)
