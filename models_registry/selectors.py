"""Reads for the registry: owners see their versions; reviewers and staff see all."""

from models_registry.models import ModelVersion, RegisteredModel
from models_registry.services import APPROVE_PERMISSION


def model_version_list(*, user):
    queryset = ModelVersion.objects.select_related("registered_model", "created_by", "reviewer", "dataset")
    if user.is_staff or user.has_perm(APPROVE_PERMISSION):
        return queryset
    return queryset.filter(created_by=user)


def registered_model_list(*, user):
    queryset = RegisteredModel.objects.select_related("owner")
    if user.is_staff or user.has_perm(APPROVE_PERMISSION):
        return queryset
    return queryset.filter(owner=user)
