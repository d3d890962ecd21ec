from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from models_registry import selectors, services
from models_registry.api.serializers import ApproveSerializer, ModelVersionSerializer, RejectSerializer


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Trained model versions and their review (approve / reject)."""

    serializer_class = ModelVersionSerializer
    filterset_fields = ["review_status", "registered_model__slug"]

    def get_queryset(self):
        return selectors.model_version_list(user=self.request.user).prefetch_related("events__actor")

    @extend_schema(request=ApproveSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        serializer = ApproveSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.model_version_approve(
            version=self.get_object(), reviewer=request.user, note=serializer.validated_data["note"]
        )
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(request=RejectSerializer, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        serializer = RejectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = services.model_version_reject(
            version=self.get_object(), reviewer=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(ModelVersionSerializer(version).data)
