from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets.selectors import dataset_list
from jobs import callbacks, selectors, services
from jobs.api.serializers import (
    JobEventSerializer,
    TrainingConfigSerializer,
    TrainingJobSerializer,
    ValidationConfigSerializer,
    ValidationJobSerializer,
)
from jobs.choices import JobKind
from jobs.models import Job
from models_registry.choices import ReviewStatus
from models_registry.selectors import model_version_list
from portal.errors import ApplicationError


def _dataset_for(user, dataset_id):
    dataset = dataset_list(user=user).filter(pk=dataset_id).first()
    if dataset is None:
        raise ApplicationError("Unknown data set.", fields={"dataset": ["Unknown data set."]})
    return dataset


def _version_for(user, version_id, field):
    version = model_version_list(user=user).filter(pk=version_id).first()
    if version is None:
        raise ApplicationError("Unknown model version.", fields={field: ["Unknown model version."]})
    return version


class JobViewSetMixin(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What every kind of job offers: follow, cancel, retry, events, log."""

    kind = None
    filterset_fields = ["status", "dataset"]

    def get_queryset(self):
        return selectors.job_list(user=self.request.user, kind=self.kind)

    def _respond(self, job, code=status.HTTP_200_OK):
        job = self.get_queryset().get(pk=job.pk)
        return Response(self.get_serializer(job).data, status=code)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._respond(services.job_cancel(job=self.get_object()), status.HTTP_202_ACCEPTED)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Start a new job with the same configuration as this failed or cancelled one."""
        return self._respond(services.job_retry(job=self.get_object(), owner=request.user), status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses=JobEventSerializer(many=True),
        parameters=[OpenApiParameter("after", int, description="Only events with a larger id.")],
    )
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        job = self.get_object()
        queryset = job.events.all()
        after = request.query_params.get("after")
        if after and after.isdigit():
            queryset = queryset.filter(pk__gt=int(after))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(JobEventSerializer(page, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("lines", int, description="How many lines (default 200, max 5000).")])
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        """The tail of the job's log, as shipped live by the worker."""
        job = self.get_object()
        raw = request.query_params.get("lines", "200")
        if not raw.isdigit() or not 1 <= int(raw) <= 5000:
            raise ApplicationError("lines must be an integer from 1 to 5000.", fields={"lines": ["1 to 5000."]})
        lines = int(raw)
        return Response({"job": job.pk, "lines": selectors.job_log_tail(job=job, lines=lines)})


class TrainingJobViewSet(JobViewSetMixin):
    """Training jobs: start one (202), follow it, cancel or retry it, compare several."""

    kind = JobKind.TRAIN
    serializer_class = TrainingJobSerializer

    @extend_schema(request=TrainingConfigSerializer, responses={202: TrainingJobSerializer})
    def create(self, request):
        serializer = TrainingConfigSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = dict(serializer.validated_data)
        dataset = _dataset_for(request.user, config.pop("dataset"))
        fine_tune_from = None
        if config.get("fine_tune_from"):
            fine_tune_from = _version_for(request.user, config["fine_tune_from"], "fine_tune_from")
            if fine_tune_from.review_status != ReviewStatus.APPROVED:
                raise ApplicationError(
                    "Only an approved version can be fine-tuned.", fields={"fine_tune_from": ["Not approved."]}
                )
        if config.get("base_model"):
            from models_registry.models import BaseModel

            if not BaseModel.objects.filter(pk=config["base_model"]).exists():
                raise ApplicationError("Unknown base model.", fields={"base_model": ["Unknown base model."]})
        job = services.training_job_create(
            owner=request.user, dataset=dataset, config=config, fine_tune_from=fine_tune_from
        )
        return self._respond(job, status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=[OpenApiParameter("ids", str, description="Comma-separated job ids.", required=True)])
    @action(detail=False, methods=["get"])
    def compare(self, request):
        """Several jobs' configuration and metrics side by side, with per-epoch history."""
        raw = request.query_params.get("ids", "")
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise ApplicationError("ids must be comma-separated integers.", fields={"ids": ["Invalid."]}) from None
        if not 1 <= len(ids) <= 20:
            raise ApplicationError("Compare between 1 and 20 jobs.", fields={"ids": ["1 to 20 ids."]})
        return Response({"jobs": selectors.jobs_compare(user=request.user, ids=ids)})


class ValidationJobViewSet(JobViewSetMixin):
    """Validation jobs: evaluate a model version on a data set split."""

    kind = JobKind.VALIDATE
    serializer_class = ValidationJobSerializer

    @extend_schema(request=ValidationConfigSerializer, responses={202: ValidationJobSerializer})
    def create(self, request):
        serializer = ValidationConfigSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = dict(serializer.validated_data)
        dataset = _dataset_for(request.user, config.pop("dataset"))
        version = _version_for(request.user, config.pop("model_version"), "model_version")
        job = services.validation_job_create(owner=request.user, model_version=version, dataset=dataset, config=config)
        return self._respond(job, status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"], url_path="confusion-matrix.png", url_name="confusion-matrix")
    def confusion_matrix(self, request, pk=None):
        result = getattr(self.get_object(), "validation_result", None)
        if result is None or not result.confusion_matrix_image:
            raise Http404("No confusion matrix image for this job.")
        return FileResponse(result.confusion_matrix_image.open("rb"), content_type="image/png")


class JobCallbackView(APIView):
    """Where trainers report: authenticated by the job's callback token, not a user."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def post(self, request, pk):
        get_object_or_404(Job.objects.only("pk"), pk=pk)
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        event = callbacks.job_callback(job_id=pk, token=token, payload=request.data)
        return Response({"accepted": True, "event": event.pk if event else None})
