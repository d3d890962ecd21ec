"""Writes for deployments: create (start a model server), mark active/failed, stop."""

import secrets

from django.db import transaction
from django.utils import timezone

from models_registry.choices import ReviewStatus, VersionEventKind
from models_registry.services import model_version_record_event
from portal.errors import ApplicationError, ConflictError
from serving.choices import DeploymentStatus, deployment_statuses_allowing
from serving.models import Deployment


def _transition(deployment_id, target, **fields):
    return Deployment.objects.filter(pk=deployment_id, status__in=deployment_statuses_allowing(target)).update(
        status=target, **fields
    )


def deployment_create(*, owner, model_version, name):
    """Deploy an approved version: the row is `starting` until its model server answers."""
    if model_version.created_by_id != owner.pk and not owner.is_staff:
        raise ApplicationError("Unknown model version.", fields={"model_version": ["Unknown model version."]})
    if model_version.review_status != ReviewStatus.APPROVED:
        raise ConflictError(
            f"Version {model_version} is {model_version.review_status}; only approved versions can be deployed.",
            fields={"model_version": ["Not approved."]},
        )
    with transaction.atomic():
        deployment = Deployment.objects.create(
            owner=owner,
            name=name or str(model_version),
            model_version=model_version,
            artifact_sha256=model_version.artifact_sha256,
            shutdown_token=secrets.token_urlsafe(24),
        )
        model_version_record_event(
            version=model_version, kind=VersionEventKind.DEPLOYED, actor=owner, reason=f"deployment {deployment.pk}"
        )
        transaction.on_commit(lambda: _enqueue("deployment_start_task", deployment.pk))
    return deployment


def _enqueue(task_name, deployment_id):
    from serving import tasks

    getattr(tasks, task_name).delay(deployment_id)


def deployment_mark_active(*, deployment_id, server_url, host, pid):
    return _transition(
        deployment_id, DeploymentStatus.ACTIVE, server_url=server_url, host=host, pid=pid, started_at=timezone.now()
    )


def deployment_mark_failed(*, deployment_id, error):
    return _transition(deployment_id, DeploymentStatus.FAILED, error=error[-5000:], stopped_at=timezone.now())


def deployment_stop(*, deployment):
    """Ask the serving worker to stop the model server."""
    with transaction.atomic():
        if not _transition(deployment.pk, DeploymentStatus.STOPPING):
            deployment.refresh_from_db()
            raise ConflictError(f"Deployment {deployment.pk} is {deployment.status} and cannot be stopped.")
        model_version_record_event(
            version=deployment.model_version,
            kind=VersionEventKind.UNDEPLOYED,
            actor=deployment.owner,
            reason=f"deployment {deployment.pk}",
        )
        transaction.on_commit(lambda: _enqueue("deployment_stop_task", deployment.pk))
    deployment.refresh_from_db()
    return deployment


def deployment_mark_stopped(*, deployment_id):
    return _transition(deployment_id, DeploymentStatus.STOPPED, stopped_at=timezone.now(), server_url="")
