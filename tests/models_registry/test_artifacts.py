"""A version's files: download (checkpoint or export), export jobs and their completion, validation galleries."""

import hashlib
from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from jobs.choices import EventKind, JobKind, JobStatus
from jobs.models import Job, ValidationResult
from jobs.services import broker_priority, export_job_create, job_retry
from models_registry.models import ModelArtifact
from tests import datagen
from tests.factories import ModelVersionFactory, TrainingJobFactory, UserFactory, ValidationJobFactory
from tests.jobs.test_callbacks import callback, claim

pytestmark = pytest.mark.django_db

API = "/api/v1/model-versions/"
WEIGHTS = b"best checkpoint bytes"
ONNX = b"onnx graph bytes"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def streamed(response):
    # Consuming the stream closes it through the test client's wrapper; an explicit close()
    # would send request_finished again and close the test transaction's connection.
    return b"".join(response.streaming_content)


@pytest.fixture
def enqueued():
    with mock.patch("jobs.tasks.job_run.apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def version(user, media_root):
    training = TrainingJobFactory(owner=user, status=JobStatus.COMPLETED, config={"model": "yolo11n", "imgsz": 320})
    return ModelVersionFactory(
        registered_model__owner=user,
        registered_model__slug="alice-shapes",
        number=3,
        training_job=training,
        dataset=training.dataset,
        artifact__data=WEIGHTS,
        artifact_sha256=sha256(WEIGHTS),
        artifact_size=len(WEIGHTS),
    )


@pytest.fixture
def plain_reviewer(reviewer):
    """A reviewer (approve permission) who is not staff."""
    person = UserFactory(username="nora")
    person.groups.add(Group.objects.get(name="reviewers"))
    return person


def stored_export(version, data=ONNX, export_format="onnx"):
    """A finished export job of `version` and the ModelArtifact it produced."""
    job = Job.objects.create(
        kind=JobKind.EXPORT,
        owner=version.created_by,
        dataset=version.dataset,
        model_version=version,
        config={"format": export_format, "imgsz": 320, "device": "cpu"},
        epochs=0,
        status=JobStatus.COMPLETED,
    )
    name = default_storage.save(f"jobs/{job.pk}/export/model.{export_format}", ContentFile(data))
    return ModelArtifact.objects.create(
        version=version, format=export_format, file=name, sha256=sha256(data), size=len(data), job=job
    )


# --- 5. download


def download(client, version, **params):
    return client.get(f"{API}{version.pk}/download/", params)


def test_the_owner_downloads_the_checkpoint_with_its_checksum(user, api, version):
    response = download(api(user), version)

    assert response.status_code == 200
    assert response["X-Checksum-SHA256"] == version.artifact_sha256 == sha256(WEIGHTS)
    assert response["Content-Disposition"] == 'attachment; filename="alice-shapes-v3.pt"'
    assert response["Content-Type"] == "application/octet-stream"
    assert streamed(response) == WEIGHTS


def test_a_reviewer_can_download(reviewer, api, version):
    response = download(api(reviewer), version)

    assert response.status_code == 200
    assert streamed(response) == WEIGHTS


def test_another_user_cannot_download(other_user, api, version):
    assert download(api(other_user), version).status_code == 404
    assert download(api(other_user), version, export="onnx").status_code == 404


def test_download_of_a_format_that_was_not_exported_is_a_bad_request(user, api, version):
    """The export is chosen with ?export= (DRF reads ?format= to pick a renderer)."""
    response = download(api(user), version, export="onnx")

    assert response.status_code == 400, (response.status_code, response.content)
    error = response.json()["error"]
    assert error["fields"] == {"export": ["Not exported."]}
    assert "POST .../export/ first" in error["message"]


def test_download_of_an_export_serves_its_bytes_and_checksum(user, reviewer, api, version):
    export = stored_export(version)

    for client in (api(user), api(reviewer)):
        response = download(client, version, export="onnx")
        assert response.status_code == 200, (response.status_code, response.content)
        assert response["X-Checksum-SHA256"] == export.sha256 == sha256(ONNX)
        assert response["Content-Disposition"] == 'attachment; filename="alice-shapes-v3.onnx"'
        assert streamed(response) == ONNX


def test_download_with_export_pt_is_the_checkpoint(user, api, version):
    response = download(api(user), version, export="pt")

    assert response.status_code == 200, (response.status_code, response.content)
    assert streamed(response) == WEIGHTS


# --- 6. export


def export(client, version, export_format="onnx"):
    return client.post(f"{API}{version.pk}/export/", {"format": export_format}, format="json")


def test_the_owner_starts_an_export_job(user, api, version, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = export(api(user), version)

    assert response.status_code == 202, response.content
    body = response.json()
    job = Job.objects.get(pk=body["job"])
    assert body == {"job": job.pk, "status": JobStatus.QUEUED, "format": "onnx"}
    assert (job.kind, job.owner, job.model_version, job.dataset) == (JobKind.EXPORT, user, version, version.dataset)
    assert job.config == {"format": "onnx", "imgsz": 320, "device": "cpu"}
    assert job.status == JobStatus.QUEUED
    assert job.events.get().kind == EventKind.QUEUED
    enqueued.assert_called_once_with(args=[job.pk], queue=job.queue, priority=broker_priority(5))


def test_the_export_is_enqueued_only_on_commit(user, api, version, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = export(api(user), version)

    assert response.status_code == 202
    enqueued.assert_not_called()
    assert len(callbacks) >= 1


def test_a_second_export_while_queued_returns_the_same_job(
    user, api, version, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = export(api(user), version)
        second = export(api(user), version)

    assert first.status_code == second.status_code == 202
    assert first.json()["job"] == second.json()["job"]
    assert Job.objects.filter(kind=JobKind.EXPORT).count() == 1
    assert enqueued.call_count == 1


def test_exports_of_two_formats_are_two_jobs(user, api, version, enqueued):
    onnx = export(api(user), version, "onnx").json()["job"]
    torchscript = export(api(user), version, "torchscript").json()["job"]

    assert onnx != torchscript
    assert Job.objects.get(pk=torchscript).config["format"] == "torchscript"


def test_a_reviewer_who_is_not_the_owner_cannot_export(plain_reviewer, api, version, enqueued):
    response = export(api(plain_reviewer), version)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert not Job.objects.filter(kind=JobKind.EXPORT).exists()
    enqueued.assert_not_called()


def test_another_user_cannot_export(other_user, api, version, enqueued):
    assert export(api(other_user), version).status_code == 404
    assert not Job.objects.filter(kind=JobKind.EXPORT).exists()


@pytest.mark.parametrize("bad", ["tflite", "", "ONNX"])
def test_an_unknown_format_is_a_bad_request(user, api, version, enqueued, bad):
    response = export(api(user), version, bad)

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"format"}
    assert not Job.objects.filter(kind=JobKind.EXPORT).exists()


def test_an_existing_export_is_a_conflict(user, api, version, enqueued):
    stored_export(version)

    response = export(api(user), version)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_exported"
    assert Job.objects.filter(kind=JobKind.EXPORT).count() == 1
    enqueued.assert_not_called()


def complete_export(job, data=ONNX, **overrides):
    fence, token = claim(job)
    name = default_storage.save(f"jobs/{job.pk}/export/model.onnx", ContentFile(data))
    payload = {
        "type": "completed",
        "fencing_token": fence,
        "artifact": name,
        "sha256": sha256(data),
        "size": len(data),
        **overrides,
    }
    return callback(job.pk, token, payload), name


def test_completing_an_export_job_stores_the_artifact(user, api, version, enqueued):
    job = Job.objects.get(pk=export(api(user), version).json()["job"])

    response, name = complete_export(job)

    assert response.status_code == 200, response.content
    artifact = ModelArtifact.objects.get(version=version)
    assert (artifact.format, artifact.job, artifact.file.name) == ("onnx", job, name)
    assert (artifact.sha256, artifact.size) == (sha256(ONNX), len(ONNX))
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.progress == 100.0
    assert job.attempts.get().outcome == "completed"
    event = job.events.get(pk=response.json()["event"])
    assert event.kind == EventKind.COMPLETED
    assert event.payload == {"export": artifact.pk, "format": "onnx", "sha256": sha256(ONNX), "size": len(ONNX)}

    detail = api(user).get(f"{API}{version.pk}/").json()
    assert [(e["format"], e["sha256"], e["size"], e["job"]) for e in detail["exports"]] == [
        ("onnx", sha256(ONNX), len(ONNX), job.pk)
    ]
    again = export(api(user), version)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_exported"


def test_the_completed_export_can_be_downloaded(user, api, version, enqueued):
    job = Job.objects.get(pk=export(api(user), version).json()["job"])
    assert complete_export(job)[0].status_code == 200

    response = download(api(user), version, export="onnx")

    assert response.status_code == 200, (response.status_code, response.content)
    assert response["X-Checksum-SHA256"] == sha256(ONNX)
    assert streamed(response) == ONNX


def test_an_export_completion_naming_another_jobs_file_is_refused(user, version, enqueued):
    job = export_job_create(owner=user, model_version=version, export_format="onnx")
    foreign = default_storage.save("jobs/999999/export/model.onnx", ContentFile(ONNX))

    response, _ = complete_export(job, artifact=foreign)

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"artifact": ["Not this job's file."]}
    assert not ModelArtifact.objects.exists()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_an_export_completion_without_a_sha256_is_refused(user, version, enqueued):
    job = export_job_create(owner=user, model_version=version, export_format="onnx")

    response, _ = complete_export(job, sha256="abc")

    assert response.status_code == 400
    assert not ModelArtifact.objects.exists()


def failed_export(user, version):
    job = export_job_create(owner=user, model_version=version, export_format="torchscript")
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, error="onnx opset missing")
    job.refresh_from_db()
    return job


def test_retrying_a_failed_export_creates_a_new_export_job(user, version, enqueued, django_capture_on_commit_callbacks):
    failed = failed_export(user, version)

    with django_capture_on_commit_callbacks(execute=True):
        retried = job_retry(job=failed, owner=user)

    assert retried.pk != failed.pk
    assert (retried.kind, retried.status, retried.model_version) == (JobKind.EXPORT, JobStatus.QUEUED, version)
    assert retried.config["format"] == "torchscript"
    assert Job.objects.filter(kind=JobKind.EXPORT).count() == 2
    enqueued.assert_called_once_with(args=[retried.pk], queue=retried.queue, priority=broker_priority(5))


def test_a_retried_export_records_what_it_retries(user, version, enqueued):
    """Training and validation retries link the new job to the failed one (retry_of); exports must too."""
    failed = failed_export(user, version)

    retried = job_retry(job=failed, owner=user)

    assert retried.retry_of_id == failed.pk


# --- 7. the validation gallery


@pytest.fixture
def validating(user, media_root):
    job = ValidationJobFactory(owner=user)
    fence, token = claim(job)
    results = {"type": "results", "fencing_token": fence, "metrics": {"mAP50": 0.6}, "per_class": []}
    assert callback(job.pk, token, results).status_code == 200
    return job, token, fence


def save_jpeg(name, seed=0):
    return default_storage.save(name, ContentFile(datagen.sample_image_bytes(seed=seed)))


def test_completed_with_a_gallery_stores_the_names(validating):
    job, token, fence = validating
    names = [save_jpeg(f"jobs/{job.pk}/gallery/{i}.jpg", seed=i) for i in range(3)]

    response = callback(job.pk, token, {"type": "completed", "fencing_token": fence, "gallery": names})

    assert response.status_code == 200, response.content
    assert ValidationResult.objects.get(job=job).gallery == names
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


def test_completed_without_a_gallery_stores_an_empty_one(validating):
    job, token, fence = validating

    assert callback(job.pk, token, {"type": "completed", "fencing_token": fence}).status_code == 200

    assert ValidationResult.objects.get(job=job).gallery == []


def test_a_gallery_name_outside_the_jobs_folder_is_refused(validating):
    job, token, fence = validating
    own = save_jpeg(f"jobs/{job.pk}/gallery/0.jpg")
    other_job = save_jpeg(f"jobs/{job.pk + 1000}/x.jpg")
    sibling = save_jpeg(f"jobs/{job.pk}0/gallery/x.jpg")  # a job whose id starts with this one's
    sneaky = f"jobs/{job.pk}/gallery/../../{job.pk + 1000}/x.jpg"
    dotted = f"jobs/{job.pk}/../{job.pk + 1000}/x.jpg"

    for bad in (other_job, sibling, sneaky, dotted, f"jobs/{job.pk}/gallery/missing.jpg", "/etc/passwd", 7):
        response = callback(job.pk, token, {"type": "completed", "fencing_token": fence, "gallery": [own, bad]})
        assert response.status_code == 400, bad
        assert response.json()["error"]["fields"] == {"gallery": ["Not this job's file."]}

    assert ValidationResult.objects.get(job=job).gallery == []
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_a_gallery_that_is_not_a_list_is_refused(validating):
    job, token, fence = validating

    response = callback(job.pk, token, {"type": "completed", "fencing_token": fence, "gallery": "jobs/1/a.jpg"})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"gallery": ["Expected a list."]}
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
