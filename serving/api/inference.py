"""Inference jobs: many images through one approved version, results stored per image."""

import base64

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from jobs.models import Job
from jobs.services import inference_job_create, job_cancel
from serving import selectors
from serving.api.views import user_model_version
from serving.inference_inputs import images_from_uploads, images_from_zip
from serving.models import InferenceResult
from serving.predict import PayloadTooLarge
from trainers.ultralytics.annotate import annotated_jpeg


class InferenceJobSerializer(serializers.ModelSerializer):
    images = serializers.SerializerMethodField()
    images_done = serializers.SerializerMethodField()
    options = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "model_version",
            "images",
            "images_done",
            "progress",
            "metrics",
            "options",
            "error",
            "attempt",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_images(self, job):
        return len(job.config.get("inputs", []))

    def get_images_done(self, job):
        return job.inference_results.count()

    def get_options(self, job):
        return {key: value for key, value in job.config.items() if key != "inputs"}


class InferenceJobCreateSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    images = serializers.ListField(child=serializers.FileField(), required=False, default=list)
    archive = serializers.FileField(required=False, help_text="A zip of images instead of `images`.")
    conf = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.25)
    iou = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.7)
    max_det = serializers.IntegerField(min_value=1, max_value=10000, default=300)
    classes = serializers.ListField(child=serializers.IntegerField(min_value=0), required=False, default=list)
    imgsz = serializers.IntegerField(
        min_value=32,
        max_value=2048,
        required=False,
        allow_null=True,
        default=None,
        help_text="Inference size; by default the size the version was trained at.",
    )
    batch = serializers.IntegerField(min_value=1, max_value=256, default=16)
    device = serializers.RegexField(r"^(|cpu|cuda:\d+|\d+(,\d+)*)$", required=False, default="")

    def validate(self, attrs):
        if bool(attrs["images"]) == bool(attrs.get("archive")):
            raise serializers.ValidationError({"images": ["Send either image files or one zip archive."]})
        if attrs["imgsz"] and attrs["imgsz"] % 32:
            raise serializers.ValidationError({"imgsz": ["imgsz must be a multiple of 32."]})
        return attrs


class InferenceResultSerializer(serializers.ModelSerializer):
    annotated_image = serializers.SerializerMethodField()

    class Meta:
        model = InferenceResult
        fields = [
            "index",
            "name",
            "width",
            "height",
            "predictions",
            "inference_time_ms",
            "error",
            "annotated_image",
        ]
        read_only_fields = fields

    def get_annotated_image(self, result):
        """Base64 JPEG, only with ?annotated=true (drawn on request from the stored image)."""
        if not self.context.get("annotated") or result.error:
            return None
        with default_storage.open(result.image.name, "rb") as handle:
            return base64.b64encode(annotated_jpeg(handle.read(), result.predictions)).decode()


class ResultPagination(PageNumberPagination):
    """Pages of results; kept small at most, since each row may carry an annotated image."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class InferenceJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Inference jobs and their stored per-image results."""

    serializer_class = InferenceJobSerializer
    filterset_fields = ["status"]
    parser_classes = [MultiPartParser]
    pagination_class = ResultPagination

    def get_queryset(self):
        return selectors.inference_job_list(user=self.request.user)

    @extend_schema(
        request={"multipart/form-data": InferenceJobCreateSerializer}, responses={202: InferenceJobSerializer}
    )
    def create(self, request):
        try:
            request.data  # noqa: B018 - parse here, to answer "too many files" as a 413
        except TooManyFilesSent as exc:
            raise PayloadTooLarge(
                f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files in one request; send a zip as `archive`."
            ) from exc
        fields = {key: request.data.get(key) for key in request.data if key not in {"images", "classes"}}
        fields.update(images=request.FILES.getlist("images"), classes=request.data.getlist("classes"))
        serializer = InferenceJobCreateSerializer(data=fields)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        version = user_model_version(request.user, values["model_version"])
        images = images_from_zip(values["archive"]) if values.get("archive") else images_from_uploads(values["images"])
        config = {key: values[key] for key in ("conf", "iou", "max_det", "classes", "imgsz", "batch", "device")}
        job = inference_job_create(owner=request.user, model_version=version, images=images, config=config)
        return Response(InferenceJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: InferenceJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return Response(InferenceJobSerializer(job_cancel(job=self.get_object())).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("annotated", bool, description="Include each annotated image (base64 JPEG).")],
        responses=InferenceResultSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        job = self.get_object()
        annotated = request.query_params.get("annotated", "").lower() in {"1", "true", "yes"}
        page = self.paginate_queryset(selectors.inference_result_list(job=job))
        serializer = InferenceResultSerializer(page, many=True, context={"annotated": annotated})
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        parameters=[OpenApiParameter("annotated", bool, description="Draw the predictions on it.")],
        responses={(200, "image/jpeg"): bytes},
    )
    @action(detail=True, methods=["get"], url_path=r"results/(?P<index>\d+)/image")
    def result_image(self, request, pk=None, index=None):
        result = selectors.inference_result_list(job=self.get_object()).filter(index=int(index)).first()
        if result is None:
            raise Http404
        with default_storage.open(result.image.name, "rb") as handle:
            data = handle.read()
        if request.query_params.get("annotated", "").lower() in {"1", "true", "yes"}:
            return HttpResponse(annotated_jpeg(data, result.predictions), content_type="image/jpeg")
        suffix = result.image.name.rsplit(".", 1)[-1].lower()
        return HttpResponse(data, content_type=f"image/{'jpeg' if suffix == 'jpg' else suffix}")
