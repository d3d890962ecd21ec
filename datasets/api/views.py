from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from datasets import selectors, services
from datasets.api.serializers import (
    DatasetCreateSerializer,
    DatasetFileSerializer,
    DatasetListSerializer,
    DatasetSerializer,
    GalleryItemSerializer,
)
from datasets.api.uploads import limit_upload_size
from datasets.choices import DatasetStatus, FileRole, FileStatus
from datasets.filters import DatasetFilter
from datasets.formats.common import SPLITS
from datasets.models import Dataset
from portal.errors import ApplicationError


class FilePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def _flag(value, name):
    if value is None or value == "":
        return None
    if value.lower() in {"1", "true", "yes"}:
        return True
    if value.lower() in {"0", "false", "no"}:
        return False
    raise ApplicationError(f"{name} must be true or false.", fields={name: ["true or false."]})


def _choice(value, name, allowed):
    if value and value not in allowed:
        raise ApplicationError(f"Unknown {name} {value!r}.", fields={name: [f"One of {', '.join(allowed)}."]})
    return value or None


CLASS_PARAM = OpenApiParameter("class", str, description="Only images showing this class (by name).")
SPLIT_PARAM = OpenApiParameter("split", str, enum=list(SPLITS))


@extend_schema_view(
    list=extend_schema(summary="Your data sets, filtered by status, task, format or name; search by name."),
    retrieve=extend_schema(summary="A data set with its validation report."),
    destroy=extend_schema(summary="Delete a data set (409 while a job or a model version uses it)."),
)
class DatasetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Upload, list, inspect and delete image data sets."""

    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]
    filter_backends = [DjangoFilterBackend, SearchFilter, OrderingFilter]
    filterset_class = DatasetFilter
    search_fields = ["name"]
    ordering_fields = ["created_at", "name", "version", "num_images"]

    def initial(self, request, *args, **kwargs):
        # Before authentication: session authentication's CSRF check would parse the body first.
        self.upload_handler = limit_upload_size(request) if self.action == "create" else None
        super().initial(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Dataset.objects.none()
        return selectors.dataset_list(user=self.request.user)

    def get_serializer_class(self):
        return DatasetListSerializer if self.action == "list" else DatasetSerializer

    def _owned(self):
        """The data set named in the URL, scoped to the user, without the list filters."""
        dataset = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, dataset)
        return dataset

    @extend_schema(
        request={"multipart/form-data": DatasetCreateSerializer},
        responses={
            201: DatasetSerializer,
            200: OpenApiResponse(DatasetSerializer, description="Identical content was uploaded before: that one."),
        },
        summary="Upload a zip; it is checked at once, then ingested in the background.",
    )
    def create(self, request):
        handler = self.upload_handler
        serializer = DatasetCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        dataset, created = services.dataset_create(
            owner=request.user,
            name=data["name"],
            file=data["file"],
            val_ratio=data.get("val_ratio"),
            split_seed=data.get("split_seed"),
            task=data.get("task"),
            auto_train=data.get("auto_train"),
            content_sha256=handler.sha256.get("file") if handler else None,
        )
        body = {**DatasetSerializer(dataset, context={"request": request}).data, "duplicate": not created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    def perform_destroy(self, instance):
        services.dataset_delete(dataset=instance)

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, summary="Counts per class and split, image sizes.")
    @action(detail=True, methods=["get"])
    def statistics(self, request, pk=None):
        return Response(selectors.dataset_statistics(self._owned()))

    @extend_schema(
        parameters=[
            SPLIT_PARAM,
            CLASS_PARAM,
            OpenApiParameter("status", str, enum=FileStatus.values),
            OpenApiParameter("role", str, enum=FileRole.values),
            OpenApiParameter("problems", bool, description="true: only files with problems; false: only clean ones."),
            OpenApiParameter("search", str, description="Part of the path."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses={200: DatasetFileSerializer(many=True)},
        summary="Every file of the upload with its problems (paginated).",
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=FilePagination)
    def files(self, request, pk=None):
        dataset = self._owned()
        params = request.query_params
        queryset = selectors.dataset_file_list(
            dataset=dataset,
            split=_choice(params.get("split"), "split", SPLITS),
            status=_choice(params.get("status"), "status", FileStatus.values),
            role=_choice(params.get("role"), "role", FileRole.values),
            class_name=params.get("class"),
            problems=_flag(params.get("problems"), "problems"),
            search=params.get("search"),
        )
        return self._page(queryset, DatasetFileSerializer, dataset)

    @extend_schema(
        parameters=[SPLIT_PARAM, CLASS_PARAM, OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses={200: GalleryItemSerializer(many=True)},
        summary="Thumbnails of a split, labels drawn in per-class colours (paginated).",
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=FilePagination)
    def gallery(self, request, pk=None):
        dataset = self._owned()
        params = request.query_params
        queryset = selectors.dataset_gallery(
            dataset=dataset,
            split=_choice(params.get("split"), "split", SPLITS),
            class_name=params.get("class"),
        )
        return self._page(queryset, GalleryItemSerializer, dataset)

    def _page(self, queryset, serializer_class, dataset):
        page = self.paginate_queryset(queryset)
        context = {"request": self.request, "dataset": dataset}
        return self.get_paginated_response(serializer_class(page, many=True, context=context).data)

    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY}, summary="One thumbnail (JPEG).")
    @action(detail=True, methods=["get"], url_path=r"files/(?P<file_id>[0-9]+)/thumbnail", url_name="thumbnail")
    def thumbnail(self, request, pk=None, file_id=None):
        dataset = self._owned()
        record = get_object_or_404(dataset.files.exclude(preview=""), pk=file_id)
        with dataset.archive.storage.open(record.preview, "rb") as handle:
            data = handle.read()
        response = HttpResponse(data, content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=86400"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY, 302: None},
        summary="The original archive, byte for byte (a redirect to a signed URL on S3).",
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        dataset = self._owned()
        if not dataset.archive:
            reason = "not kept for an invalid data set" if dataset.status == DatasetStatus.INVALID else "missing"
            raise NotFound(f"The archive of data set {dataset.pk} is {reason}.")
        storage, name = dataset.archive.storage, dataset.archive.name
        filename = f"{dataset.name}-v{dataset.version}.zip"
        try:
            path = storage.path(name)
        except NotImplementedError:
            disposition = f'attachment; filename="{filename}"'
            return HttpResponseRedirect(storage.url(name, parameters={"ResponseContentDisposition": disposition}))
        return FileResponse(open(path, "rb"), as_attachment=True, filename=filename, content_type="application/zip")
