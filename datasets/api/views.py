from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from datasets import selectors, services
from datasets.api.serializers import DatasetCreateSerializer, DatasetSerializer


class DatasetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Upload, list, inspect and delete image data sets."""

    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]
    filterset_fields = ["status", "task"]

    def get_queryset(self):
        return selectors.dataset_list(user=self.request.user)

    @extend_schema(request=DatasetCreateSerializer, responses={201: DatasetSerializer})
    def create(self, request):
        serializer = DatasetCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dataset = services.dataset_create(
            owner=request.user, name=serializer.validated_data["name"], file=serializer.validated_data["file"]
        )
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.dataset_delete(dataset=instance)
