"""The trainer callback endpoint: token auth, fencing, validation, persistence."""

import hashlib
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.test import APIClient

from jobs import services
from jobs.choices import EventKind, JobStatus
from jobs.models import Job
from models_registry.choices import ReviewStatus, VersionEventKind
from models_registry.models import ModelVersion
from tests.factories import TrainingJobFactory

pytestmark = pytest.mark.django_db


def callback(job_id, token, payload):
    client = APIClient()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token is not None else {}
    return client.post(f"/api/v1/jobs/{job_id}/callbacks/", payload, format="json", **headers)


def claim(job):
    claimed, token = services.job_claim(job_id=job.pk, worker="test-worker")
    return claimed.fencing_token, token


@pytest.fixture
def job(user):
    return TrainingJobFactory(owner=user, epochs=3)


@pytest.fixture
def running(job):
    fence, token = claim(job)
    return job, token, fence


def error_code(response):
    return response.json()["error"]["code"]


def test_started_records_the_device(running):
    job, token, fence = running

    response = callback(job.pk, token, {"type": "started", "fencing_token": fence, "device": "cuda:0", "torch": "2"})

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] is True
    job.refresh_from_db()
    assert job.device == "cuda:0"
    assert job.last_heartbeat_at is not None
    event = job.events.get(pk=response.json()["event"])
    assert event.kind == EventKind.STARTED
    assert event.payload == {"device": "cuda:0", "torch": "2"}
    assert event.attempt == 1


def test_progress_updates_progress_and_eta(running):
    job, token, fence = running

    response = callback(
        job.pk,
        token,
        {"type": "progress", "fencing_token": fence, "epoch": 2, "batch": 5, "batches": 10, "eta_seconds": 42},
    )

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.progress == 50.0  # (1 epoch done + half of the second) of 3
    assert job.eta_seconds == 42
    assert job.epoch == 0
    assert job.events.last().kind == EventKind.PROGRESS


def test_epoch_updates_epoch_metrics_and_progress(running):
    job, token, fence = running

    response = callback(
        job.pk,
        token,
        {"type": "epoch", "fencing_token": fence, "epoch": 1, "metrics": {"mAP50": 0.4, "loss": 1.25, "bad": "x"}},
    )

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.epoch == 1
    assert job.metrics == {"mAP50": 0.4, "loss": 1.25}
    assert job.progress == 33.33
    body = APIClient()
    body.force_authenticate(job.owner)
    detail = body.get(f"/api/v1/training-jobs/{job.pk}/").json()
    assert (detail["epoch"], detail["progress"], detail["metrics"]["mAP50"]) == (1, 33.33, 0.4)


def test_log_lines_are_stored(running):
    job, token, fence = running

    response = callback(job.pk, token, {"type": "log", "fencing_token": fence, "lines": ["loading", "epoch 1/3"]})

    assert response.status_code == 200, response.content
    assert job.events.last().payload == {"lines": ["loading", "epoch 1/3"]}


def test_log_lines_must_be_strings(running):
    job, token, fence = running

    response = callback(job.pk, token, {"type": "log", "fencing_token": fence, "lines": "not a list"})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"lines": ["Expected strings."]}


def test_wrong_token_is_forbidden(running):
    job, _, fence = running

    response = callback(job.pk, "not-the-token", {"type": "started", "fencing_token": fence})

    assert response.status_code == 403
    assert error_code(response) == "bad_token"
    job.refresh_from_db()
    assert job.device == ""


@pytest.mark.parametrize("header", [None, "", "Token abc", "Bearer "])
def test_missing_or_malformed_authorization_is_forbidden(running, header):
    job, token, fence = running
    client = APIClient()
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}

    response = client.post(
        f"/api/v1/jobs/{job.pk}/callbacks/",
        {"type": "log", "fencing_token": fence, "lines": ["x"]},
        format="json",
        **extra,
    )

    assert response.status_code == 403
    assert error_code(response) == "bad_token"
    assert not job.events.filter(kind=EventKind.LOG).exists()


def test_another_jobs_token_is_forbidden(running, user):
    job, _, fence = running
    other = TrainingJobFactory(owner=user)
    other_fence, other_token = claim(other)
    assert other_fence == fence

    response = callback(job.pk, other_token, {"type": "started", "fencing_token": fence})

    assert response.status_code == 403
    assert error_code(response) == "bad_token"


def test_unknown_job_is_not_found(running):
    _, token, fence = running

    response = callback(999_999, token, {"type": "started", "fencing_token": fence})

    assert response.status_code == 404


def test_stale_writer_is_refused_after_requeue(running):
    job, old_token, old_fence = running
    reaped = services.jobs_reap(now=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1))
    assert reaped == [job.pk]
    new_fence, new_token = claim(job)
    assert new_fence == old_fence + 1

    old_writer = callback(job.pk, old_token, {"type": "epoch", "fencing_token": old_fence, "epoch": 1})
    old_fence_new_token = callback(job.pk, new_token, {"type": "epoch", "fencing_token": old_fence, "epoch": 1})
    current = callback(job.pk, new_token, {"type": "epoch", "fencing_token": new_fence, "epoch": 1})

    assert old_writer.status_code == 403  # the old attempt's token was revoked by the requeue
    assert old_fence_new_token.status_code == 409
    assert error_code(old_fence_new_token) == "stale_fencing_token"
    assert current.status_code == 200
    job.refresh_from_db()
    assert job.epoch == 1
    assert job.events.filter(kind=EventKind.EPOCH).count() == 1


def test_token_of_a_requeued_job_is_refused_before_the_next_claim(running):
    job, token, fence = running
    services.jobs_reap(now=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1))

    response = callback(job.pk, token, {"type": "log", "fencing_token": fence, "lines": ["late"]})

    assert response.status_code == 403


@pytest.mark.parametrize("payload", [{}, {"fencing_token": "1"}, {"fencing_token": True}, {"fencing_token": 0}])
def test_fencing_token_is_required(running, payload):
    job, token, _ = running

    response = callback(job.pk, token, {"type": "started", **payload})

    assert response.status_code == 400
    assert "fencing_token" in response.json()["error"]["fields"]


def test_epoch_regression_is_a_conflict(running):
    job, token, fence = running
    assert callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": 2}).status_code == 200

    same = callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": 2})
    earlier = callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": 1})
    late_progress = callback(
        job.pk, token, {"type": "progress", "fencing_token": fence, "epoch": 2, "batch": 1, "batches": 2}
    )

    for response in (same, earlier, late_progress):
        assert response.status_code == 409
        assert error_code(response) == "epoch_regression"
    job.refresh_from_db()
    assert job.epoch == 2


def test_epoch_beyond_the_configured_epochs_is_refused(running):
    job, token, fence = running

    response = callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": 4})

    assert response.status_code == 400
    job.refresh_from_db()
    assert job.epoch == 0


def test_unknown_type_is_a_bad_request(running):
    job, token, fence = running

    response = callback(job.pk, token, {"type": "explode", "fencing_token": fence})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"type": ["Unknown type."]}
    assert "explode" in response.json()["error"]["message"]


def test_failed_then_anything_is_a_conflict(running):
    job, token, fence = running

    failed = callback(job.pk, token, {"type": "failed", "fencing_token": fence, "error": "CUDA out of memory"})
    after = callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": 1})

    assert failed.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "CUDA out of memory"
    assert after.status_code == 409
    assert error_code(after) == "job_terminal"


def test_cancelled_callback_needs_a_cancel_request(running):
    job, token, fence = running

    refused = callback(job.pk, token, {"type": "cancelled", "fencing_token": fence})
    services.job_cancel(job=job)
    accepted = callback(job.pk, token, {"type": "cancelled", "fencing_token": fence})

    assert refused.status_code == 409
    assert accepted.status_code == 200
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


@pytest.fixture
def artifact(media_root, running):
    job = running[0]
    data = b"best checkpoint bytes"
    name = default_storage.save(f"jobs/{job.pk}/attempt-1/best.pt", ContentFile(data))
    return name, hashlib.sha256(data).hexdigest(), len(data)


def test_completed_refuses_an_artifact_that_is_not_this_jobs(running, media_root):
    job, token, fence = running
    data = b"someone else's file"
    foreign = default_storage.save("datasets/1/other/archive.zip", ContentFile(data))
    payload = {"type": "completed", "fencing_token": fence, "sha256": hashlib.sha256(data).hexdigest(), "size": 1}
    for name in (foreign, f"jobs/{job.pk}/missing.pt"):
        response = callback(job.pk, token, {**payload, "artifact": name})
        assert response.status_code == 400, name
        assert response.json()["error"]["fields"]["artifact"]
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert not ModelVersion.objects.filter(training_job=job).exists()


def test_completed_creates_a_version_pending_review(running, artifact, user):
    job, token, fence = running
    name, sha256, size = artifact
    assert callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": 3}).status_code == 200

    response = callback(
        job.pk,
        token,
        {
            "type": "completed",
            "fencing_token": fence,
            "artifact": name,
            "sha256": sha256,
            "size": size,
            "metrics": {"mAP50": 0.61},
        },
    )

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.progress == 100.0
    assert job.finished_at is not None
    assert job.metrics == {"mAP50": 0.61}
    version = ModelVersion.objects.get(training_job=job)
    assert version.review_status == ReviewStatus.PENDING_REVIEW
    assert version.created_by == user
    assert version.dataset == job.dataset
    assert version.number == 1
    assert version.artifact.name == name
    assert version.artifact_sha256 == sha256
    assert version.artifact_size == size
    assert version.metrics == {"mAP50": 0.61}
    assert version.registered_model.name == f"{job.dataset.name} yolo11n"
    assert version.artifact.read() == b"best checkpoint bytes"
    assert list(version.events.values_list("kind", flat=True)) == [VersionEventKind.CREATED]
    completed = job.events.get(pk=response.json()["event"])
    assert completed.kind == EventKind.COMPLETED
    assert completed.payload["model_version"] == version.pk

    after = callback(job.pk, token, {"type": "log", "fencing_token": fence, "lines": ["late"]})
    assert after.status_code == 409
    assert error_code(after) == "job_terminal"


def test_completed_twice_is_a_conflict(running, artifact):
    job, token, fence = running
    name, sha256, size = artifact
    payload = {"type": "completed", "fencing_token": fence, "artifact": name, "sha256": sha256, "size": size}
    assert callback(job.pk, token, payload).status_code == 200

    again = callback(job.pk, token, payload)

    assert again.status_code == 409
    assert ModelVersion.objects.filter(training_job=job).count() == 1


@pytest.mark.parametrize(
    "missing",
    [{"artifact": ""}, {"sha256": "abc"}, {"size": None}, {"size": -1}],
    ids=["artifact", "sha256", "size", "negative-size"],
)
def test_completed_with_bad_fields_changes_nothing(running, artifact, missing):
    job, token, fence = running
    name, sha256, size = artifact
    payload = {"type": "completed", "fencing_token": fence, "artifact": name, "sha256": sha256, "size": size}
    payload.update(missing)
    payload = {k: v for k, v in payload.items() if v is not None}

    response = callback(job.pk, token, payload)

    assert response.status_code == 400
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.progress == 0
    assert not ModelVersion.objects.exists()


def test_completed_versions_of_one_model_are_numbered(user, media_root):
    data = b"weights"
    sha256, size = hashlib.sha256(data).hexdigest(), len(data)
    numbers = []
    for _ in range(2):
        job = TrainingJobFactory(owner=user, config={"model": "yolo11n", "epochs": 1, "registered_model": "shapes"})
        fence, token = claim(job)
        name = default_storage.save(f"jobs/{job.pk}/best.pt", ContentFile(data))
        payload = {"type": "completed", "fencing_token": fence, "artifact": name, "sha256": sha256, "size": size}
        assert callback(job.pk, token, payload).status_code == 200
        numbers.append(Job.objects.get(pk=job.pk).trained_version.number)

    assert numbers == [1, 2]
    assert ModelVersion.objects.values("registered_model").distinct().count() == 1
