from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from models_registry.selectors import model_version_list
from portal.errors import ApplicationError, ConflictError
from serving import selectors, services
from serving.api.serializers import (
    DeploymentCreateSerializer,
    DeploymentSerializer,
    EndpointSerializer,
    EndpointSwitchSerializer,
    PredictSerializer,
    UsageSerializer,
)
from serving.predict import content_type_check, deployment_predict, endpoint_predict


def user_model_version(user, version_id):
    version = model_version_list(user=user).filter(pk=version_id).select_related("registered_model").first()
    if version is None:
        raise ApplicationError("Unknown model version.", fields={"model_version": ["Unknown model version."]})
    return version


def predict_arguments(data):
    """The predict services' keyword arguments from a valid PredictSerializer's data (the image type checked)."""
    content_type_check(getattr(data["image"], "content_type", ""))
    return {
        "data": data["image"].read(),
        "conf": data.get("conf"),
        "iou": data.get("iou"),
        "max_det": data.get("max_det"),
        "classes": data.get("classes"),
        "annotated": data["annotated"],
    }


def _predict_arguments(request):
    serializer = PredictSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    return predict_arguments(serializer.validated_data)


def _usage(request, deployment):
    serializer = UsageSerializer(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    summary = selectors.deployment_usage_summary(
        deployment=deployment, minutes=serializer.validated_data.get("minutes")
    )
    return Response({"deployment": deployment.pk, **summary})


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
        version = user_model_version(request.user, serializer.validated_data["model_version"])
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
        return Response(deployment_predict(deployment=deployment, **_predict_arguments(request)))

    @extend_schema(parameters=[UsageSerializer])
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        return _usage(request, self.get_object())


class EndpointViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A registered model's stable address: predict, switch, roll back, stop."""

    serializer_class = EndpointSerializer
    lookup_field = "slug"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.endpoint_list(user=self.request.user)

    @extend_schema(request={"multipart/form-data": PredictSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    def predict(self, request, slug=None):
        endpoint = self.get_object()
        return Response(endpoint_predict(endpoint=endpoint, **_predict_arguments(request)))

    @extend_schema(request=EndpointSwitchSerializer, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def switch(self, request, slug=None):
        endpoint = self.get_object()
        serializer = EndpointSwitchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = user_model_version(request.user, serializer.validated_data["model_version"])
        deployment = services.endpoint_switch(endpoint=endpoint, model_version=version, actor=request.user)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, slug=None):
        deployment = services.endpoint_rollback(endpoint=self.get_object(), actor=request.user)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, slug=None):
        endpoint = self.get_object()
        if endpoint.current_deployment is None:
            raise ConflictError(f"Endpoint {endpoint.slug} serves nothing.")
        deployment = services.deployment_stop(deployment=endpoint.current_deployment)
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[UsageSerializer])
    @action(detail=True, methods=["get"])
    def usage(self, request, slug=None):
        endpoint = self.get_object()
        if endpoint.current_deployment is None:
            raise ConflictError(f"Endpoint {endpoint.slug} serves nothing.")
        return _usage(request, endpoint.current_deployment)
