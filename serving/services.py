"""Writes for endpoints and deployments: deploy, switch, roll back, mark active/failed, stop, usage."""

import secrets

from django.db import transaction
from django.utils import timezone

from models_registry.choices import ReviewStatus, VersionEventKind
from models_registry.services import model_version_record_event
from portal.errors import ApplicationError, ConflictError
from serving import selectors
from serving.choices import DeploymentStatus, deployment_statuses_allowing
from serving.models import Deployment, DeploymentUsage, Endpoint
from serving.usage import latency_bucket


def _transition(deployment_id, target, **fields):
    return Deployment.objects.filter(pk=deployment_id, status__in=deployment_statuses_allowing(target)).update(
        status=target, **fields
    )


def _endpoint_for(registered_model):
    endpoint, _ = Endpoint.objects.get_or_create(
        registered_model=registered_model,
        defaults={"owner": registered_model.owner, "slug": registered_model.slug},
    )
    return endpoint


def deployment_create(*, owner, model_version, name=""):
    """Deploy an approved version on its registered model's endpoint.

    The row is `starting` until its model server answers with the pinned hash; then the endpoint
    points to it in the same transaction that stops the deployment it replaces (see
    `deployment_mark_active`), so a switch changes no client URL.
    """
    if model_version.created_by_id != owner.pk and not owner.is_staff:
        raise ApplicationError("Unknown model version.", fields={"model_version": ["Unknown model version."]})
    if model_version.review_status != ReviewStatus.APPROVED:
        raise ConflictError(
            f"Version {model_version} is {model_version.review_status}; only approved versions can be deployed.",
            fields={"model_version": ["Not approved."]},
        )
    with transaction.atomic():
        endpoint = _endpoint_for(model_version.registered_model)
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        if endpoint.deployments.filter(status=DeploymentStatus.STARTING).exists():
            raise ConflictError(f"Endpoint {endpoint.slug} is already switching; wait until it is done.")
        deployment = Deployment.objects.create(
            owner=owner,
            endpoint=endpoint,
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


def endpoint_switch(*, endpoint, model_version, actor):
    """Serve another approved version of the endpoint's model; the current one keeps serving meanwhile."""
    if model_version.registered_model_id != endpoint.registered_model_id:
        raise ApplicationError(
            "The version belongs to another model.", fields={"model_version": ["Not a version of this model."]}
        )
    current = endpoint.current_deployment
    if current and current.status == DeploymentStatus.ACTIVE and current.model_version_id == model_version.pk:
        raise ConflictError(f"Endpoint {endpoint.slug} already serves {model_version}.")
    return deployment_create(owner=actor, model_version=model_version, name=endpoint.slug)


def endpoint_rollback(*, endpoint, actor):
    """Switch back to the approved version the endpoint served before its current one."""
    previous = selectors.endpoint_previous_version(endpoint=endpoint)
    if previous is None:
        raise ConflictError(f"Endpoint {endpoint.slug} has no earlier approved version to roll back to.")
    return endpoint_switch(endpoint=endpoint, model_version=previous, actor=actor)


def _enqueue(task_name, deployment_id):
    from serving import tasks

    getattr(tasks, task_name).delay(deployment_id)


def deployment_mark_active(*, deployment_id, server_url, host, pid):
    """Activate a healthy deployment and point its endpoint to it, stopping the one it replaces."""
    with transaction.atomic():
        updated = _transition(
            deployment_id,
            DeploymentStatus.ACTIVE,
            server_url=server_url,
            host=host,
            pid=pid,
            started_at=timezone.now(),
        )
        if not updated:
            return 0
        deployment = Deployment.objects.get(pk=deployment_id)
        if deployment.endpoint_id is None:
            return updated
        endpoint = Endpoint.objects.select_for_update().get(pk=deployment.endpoint_id)
        replaced_id = endpoint.current_deployment_id
        endpoint.current_deployment = deployment
        endpoint.switched_at = timezone.now()
        endpoint.save(update_fields=["current_deployment", "switched_at"])
        if replaced_id and replaced_id != deployment.pk and _transition(replaced_id, DeploymentStatus.STOPPING):
            replaced = Deployment.objects.select_related("model_version").get(pk=replaced_id)
            model_version_record_event(
                version=replaced.model_version,
                kind=VersionEventKind.UNDEPLOYED,
                actor=deployment.owner,
                reason=f"deployment {replaced_id} replaced by deployment {deployment.pk}",
            )
            transaction.on_commit(lambda: _enqueue("deployment_stop_task", replaced_id))
    return updated


def deployment_mark_failed(*, deployment_id, error):
    return _transition(deployment_id, DeploymentStatus.FAILED, error=error[-5000:], stopped_at=timezone.now())


def deployment_mark_unhealthy(*, deployment_id, error):
    """Fail an *active* deployment whose server died; one being stopped meanwhile is left to its stop."""
    return Deployment.objects.filter(pk=deployment_id, status=DeploymentStatus.ACTIVE).update(
        status=DeploymentStatus.FAILED, error=error[-5000:], stopped_at=timezone.now()
    )


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


def deployment_usage_record(*, deployment_id, latency_ms, error):
    """Count one predict request in its minute's row (counts and a latency histogram)."""
    minute = timezone.now().replace(second=0, microsecond=0)
    bucket = latency_bucket(latency_ms)
    with transaction.atomic():
        row, _ = DeploymentUsage.objects.select_for_update().get_or_create(deployment_id=deployment_id, minute=minute)
        histogram = list(row.latency_histogram)
        histogram.extend([0] * (bucket + 1 - len(histogram)))
        histogram[bucket] += 1
        row.latency_histogram = histogram
        row.request_count += 1
        row.error_count += int(bool(error))
        row.latency_total_ms += latency_ms
        row.save(update_fields=["latency_histogram", "request_count", "error_count", "latency_total_ms"])


def inference_results_store(*, job, results):
    """Store per-image results reported by the predict CLI; returns (stored so far, total images)."""
    from serving.models import InferenceResult

    inputs = job.config.get("inputs", [])
    rows = []
    for result in results:
        index = result.get("index") if isinstance(result, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(inputs):
            raise ApplicationError("Each result needs the 'index' of one of the job's images.")
        predictions = result.get("predictions", [])
        if not isinstance(predictions, list):
            raise ApplicationError("'predictions' must be a list.", fields={"predictions": ["Expected a list."]})
        timing = result.get("inference_time_ms", 0.0)
        rows.append(
            InferenceResult(
                job=job,
                index=index,
                name=inputs[index]["name"],
                image=inputs[index]["storage_name"],
                width=int(result.get("width") or 0),
                height=int(result.get("height") or 0),
                predictions=predictions,
                inference_time_ms=float(timing) if isinstance(timing, int | float) else 0.0,
                error=str(result.get("error") or "")[:2000],
            )
        )
    InferenceResult.objects.bulk_create(rows, ignore_conflicts=True)
    return job.inference_results.count(), len(inputs)
