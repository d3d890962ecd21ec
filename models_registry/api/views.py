from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs.services import export_job_create
from models_registry import evidence, selectors, services
from models_registry.api.serializers import (
    ApproveSerializer,
    ExportSerializer,
    ModelVersionSerializer,
    RegisteredModelSerializer,
    RejectSerializer,
)
from portal.errors import ApplicationError, ForbiddenError


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Trained model versions: review (approve / reject), evidence, download and export."""

    serializer_class = ModelVersionSerializer
    filterset_fields = ["review_status", "registered_model__slug"]

    def get_queryset(self):
        return selectors.model_version_list(user=self.request.user).prefetch_related("events__actor", "exports")

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

    @action(detail=True, methods=["get"], url_path="evidence")
    def review_evidence(self, request, pk=None):
        """What the admin's review page shows, as data: per-class metrics, deltas, policy, curves, log."""
        version = self.get_object()
        found = evidence.review_evidence(version)
        validation = found["validation"]
        return Response(
            {
                "version": version.pk,
                "validation_job": validation.job_id if validation else None,
                "per_class": validation.per_class if validation else [],
                "confusion_matrix": validation.confusion_matrix if validation else {},
                "baseline_version": found["baseline"].pk if found["baseline"] else None,
                "per_class_deltas": found["deltas"],
                "policy_violations": found["violations"],
                "history": found["history"],
                "dataset": {"id": version.dataset_id, "errors": found["dataset_errors"]},
                "log_tail": found["log_tail"],
            }
        )

    @extend_schema(
        parameters=[OpenApiParameter("export", str, description="onnx or torchscript; absent: the PyTorch checkpoint")],
        responses={(200, "application/octet-stream"): bytes},
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The best checkpoint (or an export of it); the sha256 is in the X-Checksum-SHA256 header."""
        version = self.get_object()
        # Not `format`: DRF reads that query parameter to pick a renderer.
        wanted = request.query_params.get("export", "pt")
        if wanted == "pt":
            handle, sha256, name = (
                version.artifact.open("rb"),
                version.artifact_sha256,
                f"{version.registered_model.slug}-v{version.number}.pt",
            )
        else:
            export = version.exports.filter(format=wanted).first()
            if export is None:
                raise ApplicationError(
                    f"No {wanted} export of this version; POST .../export/ first.", fields={"export": ["Not exported."]}
                )
            handle, sha256 = export.file.open("rb"), export.sha256
            name = f"{version.registered_model.slug}-v{version.number}.{wanted}"
        response = FileResponse(handle, as_attachment=True, filename=name, content_type="application/octet-stream")
        response["X-Checksum-SHA256"] = sha256
        return response

    @extend_schema(request=ExportSerializer)
    @action(detail=True, methods=["post"])
    def export(self, request, pk=None):
        """Export to ONNX or TorchScript as a job (202); an export that exists answers 409."""
        version = self.get_object()
        if version.created_by_id != request.user.pk and not request.user.is_staff:
            raise ForbiddenError("Only the version's owner (or staff) can export it.")
        serializer = ExportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = export_job_create(
            owner=request.user, model_version=version, export_format=serializer.validated_data["format"]
        )
        return Response(
            {"job": job.pk, "status": job.status, "format": job.config["format"]}, status=status.HTTP_202_ACCEPTED
        )


class RegisteredModelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet
):
    """Registered models and their promotion policy (changed by staff only)."""

    serializer_class = RegisteredModelSerializer
    lookup_field = "slug"
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        return selectors.registered_model_list(user=self.request.user)

    def perform_update(self, serializer):
        if not self.request.user.is_staff:
            raise ForbiddenError("Only staff change a promotion policy.")
        serializer.save()
