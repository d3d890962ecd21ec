from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from datasets.selectors import dataset_list
from jobs import callbacks, selectors, services
from jobs.api.serializers import JobEventSerializer, TrainingConfigSerializer, TrainingJobSerializer
from portal.errors import ApplicationError


class TrainingJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training jobs: start one (202), follow it, cancel it."""

    serializer_class = TrainingJobSerializer
    filterset_fields = ["status", "dataset"]

    def get_queryset(self):
        return selectors.training_job_list(user=self.request.user)

    @extend_schema(request=TrainingConfigSerializer, responses={202: TrainingJobSerializer})
    def create(self, request):
        serializer = TrainingConfigSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        config = dict(serializer.validated_data)
        dataset = dataset_list(user=request.user).filter(pk=config.pop("dataset")).first()
        if dataset is None:
            raise ApplicationError("Unknown data set.", fields={"dataset": ["Unknown data set."]})
        job = services.training_job_create(owner=request.user, dataset=dataset, config=config)
        job = self.get_queryset().get(pk=job.pk)
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: TrainingJobSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = services.training_job_cancel(job=self.get_object())
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=JobEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        job = self.get_object()
        queryset = job.events.all()
        after = request.query_params.get("after")
        if after and after.isdigit():
            queryset = queryset.filter(pk__gt=int(after))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(JobEventSerializer(page, many=True).data)


class TrainingJobCallbackView(APIView):
    """Where trainers report: authenticated by the job's callback token, not a user."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def post(self, request, pk):
        from jobs.models import TrainingJob

        get_object_or_404(TrainingJob.objects.only("pk"), pk=pk)
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        event = callbacks.training_job_callback(job_id=pk, token=token, payload=request.data)
        return Response({"accepted": True, "event": event.pk if event else None})
