"""Validation jobs: creation, the results/completed callbacks, the confusion matrix image, auto-validation."""

import hashlib
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from datasets.choices import DatasetTask
from jobs.choices import EventKind, JobKind, JobStatus
from jobs.models import Job, ValidationResult
from jobs.services import broker_priority
from models_registry.choices import ReviewStatus
from models_registry.models import ModelVersion
from tests.factories import (
    DatasetFactory,
    ModelVersionFactory,
    RegisteredModelFactory,
    TrainingJobFactory,
    ValidationJobFactory,
)
from tests.jobs.test_callbacks import callback, claim

URL = "/api/v1/validation-jobs/"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued():
    with mock.patch("jobs.tasks.job_run.apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def version(user):
    return ModelVersionFactory(registered_model__owner=user)


# --- create


def test_create_queues_a_validation_job(user, api, version, enqueued, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(owner=user)

    with django_capture_on_commit_callbacks(execute=True):
        response = api(user).post(URL, {"model_version": version.pk, "dataset": dataset.pk}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == JobKind.VALIDATE
    assert body["status"] == JobStatus.QUEUED
    assert body["model_version"] == version.pk
    assert body["dataset"] == dataset.pk
    assert body["epochs"] == 0
    assert body["result"] is None
    assert body["config"] == {
        "split": "val",
        "conf": 0.001,
        "iou": 0.7,
        "imgsz": 640,
        "batch": 16,
        "device": "",
        "queue": "gpu",
        "priority": 5,
    }
    job = Job.objects.get(pk=body["id"])
    assert (job.kind, job.owner, job.model_version, job.dataset) == (JobKind.VALIDATE, user, version, dataset)
    enqueued.assert_called_once_with(args=[job.pk], queue="gpu", priority=broker_priority(5))
    # A validation job is not a training job.
    assert api(user).get(f"/api/v1/training-jobs/{job.pk}/").status_code == 404


def test_create_refuses_a_task_mismatch(user, api, version, enqueued):
    dataset = DatasetFactory(owner=user, task=DatasetTask.CLASSIFY)
    assert version.registered_model.task == "detect"

    response = api(user).post(URL, {"model_version": version.pk, "dataset": dataset.pk}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {"dataset": ["Task mismatch."]}
    assert "detect" in error["message"] and "classify" in error["message"]
    assert not Job.objects.exists()
    enqueued.assert_not_called()


def test_create_refuses_another_users_version(user, other_user, api, enqueued):
    theirs = ModelVersionFactory(registered_model__owner=other_user, review_status=ReviewStatus.APPROVED)
    dataset = DatasetFactory(owner=user)

    response = api(user).post(URL, {"model_version": theirs.pk, "dataset": dataset.pk}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "Unknown model version."
    assert error["fields"] == {"model_version": ["Unknown model version."]}
    assert not Job.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("split", "test"), ("conf", 1.5), ("iou", -0.1), ("queue", "cpu")])
def test_create_validates_the_config(user, api, version, field, value):
    response = api(user).post(
        URL, {"model_version": version.pk, "dataset": version.dataset_id, field: value}, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {field}
    assert not Job.objects.exists()


# --- callbacks


@pytest.fixture
def running(user):
    job = ValidationJobFactory(owner=user)
    fence, token = claim(job)
    return job, token, fence


RESULTS = {
    "type": "results",
    "metrics": {"mAP50": 0.61, "mAP50-95": 0.4, "precision": 0.7, "recall": 0.5},
    "per_class": [{"class": "square", "mAP50": 0.7}, {"class": "disc", "mAP50": 0.52}],
    "confusion_matrix": {
        "labels": ["square", "disc", "background"],
        "matrix": [[3, 0, 1], [1, 2, 0], [0, 1, 0]],
        "rows": "predicted",
        "columns": "true",
    },
    "curves": {"pr": {"recall": [0.0, 0.5, 1.0], "precision": {"square": [1.0, 0.8, 0.2]}}},
    "speed_ms": {"inference": 1.5, "nms": 0.25},
}


def test_results_then_completed_stores_the_result_and_serves_the_image(running, user, other_user, api, media_root):
    job, token, fence = running

    results = callback(job.pk, token, {**RESULTS, "fencing_token": fence})

    assert results.status_code == 200, results.content
    result = ValidationResult.objects.get(job=job)
    assert (result.model_version, result.dataset) == (job.model_version, job.dataset)
    assert (result.split, result.conf, result.iou) == ("val", 0.001, 0.7)
    assert result.metrics == RESULTS["metrics"]
    assert result.per_class == RESULTS["per_class"]
    assert result.confusion_matrix == RESULTS["confusion_matrix"]
    assert result.curves == RESULTS["curves"]
    assert result.speed_ms == RESULTS["speed_ms"]
    assert not result.confusion_matrix_image
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.progress == 99.0
    assert job.events.get(pk=results.json()["event"]).kind == EventKind.RESULTS

    image = default_storage.save(f"jobs/{job.pk}/confusion_matrix.png", ContentFile(PNG))
    completed = callback(job.pk, token, {"type": "completed", "fencing_token": fence, "confusion_matrix_image": image})

    assert completed.status_code == 200, completed.content
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.progress == 100.0
    assert job.metrics == RESULTS["metrics"]
    assert job.finished_at is not None
    assert job.attempts.get().outcome == "completed"
    event = job.events.get(pk=completed.json()["event"])
    assert event.kind == EventKind.COMPLETED
    assert event.payload == {"validation_result": result.pk, "metrics": RESULTS["metrics"]}

    detail = api(user).get(f"{URL}{job.pk}/")
    assert detail.status_code == 200
    shown = detail.json()["result"]
    image_url = f"http://testserver{URL}{job.pk}/confusion-matrix.png/"
    assert shown["confusion_matrix_image"] == image_url
    assert shown["metrics"] == RESULTS["metrics"]
    assert shown["per_class"] == RESULTS["per_class"]
    assert shown["confusion_matrix"] == RESULTS["confusion_matrix"]
    assert shown["curves"] == RESULTS["curves"]
    assert shown["split"] == "val"

    png = api(user).get(image_url.removeprefix("http://testserver"))
    assert png.status_code == 200
    assert png["Content-Type"] == "image/png"
    assert b"".join(png.streaming_content) == PNG
    assert api(other_user).get(f"{URL}{job.pk}/confusion-matrix.png", follow=True).status_code == 404
    assert api(other_user).get(f"{URL}{job.pk}/").status_code == 404


def test_the_advertised_image_url_serves_the_image_without_a_redirect(running, user, api, media_root):
    job, token, fence = running
    assert callback(job.pk, token, {**RESULTS, "fencing_token": fence}).status_code == 200
    image = default_storage.save(f"jobs/{job.pk}/confusion_matrix.png", ContentFile(PNG))
    payload = {"type": "completed", "fencing_token": fence, "confusion_matrix_image": image}
    assert callback(job.pk, token, payload).status_code == 200
    image_url = api(user).get(f"{URL}{job.pk}/").json()["result"]["confusion_matrix_image"]

    response = api(user).get(image_url.removeprefix("http://testserver"))

    assert response.status_code == 200, f"{image_url} answered {response.status_code} {response.get('Location')}"
    assert b"".join(response.streaming_content) == PNG
    response.close()


def test_completed_without_an_image_has_no_image_url(running, user, api, media_root):
    job, token, fence = running
    assert callback(job.pk, token, {**RESULTS, "fencing_token": fence}).status_code == 200

    assert callback(job.pk, token, {"type": "completed", "fencing_token": fence}).status_code == 200

    assert api(user).get(f"{URL}{job.pk}/").json()["result"]["confusion_matrix_image"] is None
    assert api(user).get(f"{URL}{job.pk}/confusion-matrix.png", follow=True).status_code == 404


def test_completed_refuses_an_image_that_is_not_this_jobs(running, media_root):
    job, token, fence = running
    assert callback(job.pk, token, {**RESULTS, "fencing_token": fence}).status_code == 200
    foreign = default_storage.save("datasets/1/x/preview.png", ContentFile(PNG))

    for name in (foreign, f"jobs/{job.pk}/missing.png"):
        response = callback(
            job.pk, token, {"type": "completed", "fencing_token": fence, "confusion_matrix_image": name}
        )
        assert response.status_code == 400, name
        assert response.json()["error"]["fields"] == {"confusion_matrix_image": ["Not this job's file."]}

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert not ValidationResult.objects.get(job=job).confusion_matrix_image


def test_completed_before_results_is_a_conflict(running):
    job, token, fence = running

    response = callback(job.pk, token, {"type": "completed", "fencing_token": fence})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert not job.events.filter(kind=EventKind.COMPLETED).exists()


def test_results_on_a_training_job_are_refused(user):
    job = TrainingJobFactory(owner=user)
    fence, token = claim(job)

    response = callback(job.pk, token, {**RESULTS, "fencing_token": fence})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not ValidationResult.objects.exists()
    assert not job.events.filter(kind=EventKind.RESULTS).exists()


def test_results_with_malformed_parts_are_refused(running):
    job, token, fence = running

    for bad in ({"per_class": {"square": 1}}, {"confusion_matrix": [[1]]}, {"curves": [1, 2]}):
        response = callback(job.pk, token, {**RESULTS, **bad, "fencing_token": fence})
        assert response.status_code == 400, bad

    assert not ValidationResult.objects.exists()


# --- validation after training


def complete_training(job, data=b"best weights"):
    fence, token = claim(job)
    name = default_storage.save(f"jobs/{job.pk}/model/best.pt", ContentFile(data))
    payload = {
        "type": "completed",
        "fencing_token": fence,
        "artifact": name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "metrics": {"mAP50": 0.5},
    }
    return callback(job.pk, token, payload)


def test_a_completed_training_job_is_validated_on_its_dataset(
    user, media_root, enqueued, django_capture_on_commit_callbacks
):
    job = TrainingJobFactory(owner=user, queue="gpu", priority=7)

    with django_capture_on_commit_callbacks(execute=True):
        response = complete_training(job)

    assert response.status_code == 200, response.content
    version = ModelVersion.objects.get(training_job=job)
    validation = Job.objects.get(kind=JobKind.VALIDATE)
    assert validation.model_version == version
    assert validation.dataset == job.dataset
    assert validation.owner == user
    assert validation.status == JobStatus.QUEUED
    assert validation.config["split"] == "val"
    assert (validation.queue, validation.priority) == ("gpu", 7)
    enqueued.assert_called_once_with(args=[validation.pk], queue="gpu", priority=broker_priority(7))


def test_validate_after_false_skips_the_validation(user, media_root, enqueued):
    job = TrainingJobFactory(owner=user, config={"model": "yolo11n", "epochs": 3, "validate_after": False})

    assert complete_training(job).status_code == 200

    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert not Job.objects.filter(kind=JobKind.VALIDATE).exists()


def test_training_into_a_registered_model_of_another_task_still_completes(user, media_root, enqueued):
    """The auto-validation must not undo a finished training run."""
    RegisteredModelFactory(owner=user, name="shapes", task=DatasetTask.DETECT)
    dataset = DatasetFactory(owner=user, task=DatasetTask.SEGMENT)
    job = TrainingJobFactory(
        owner=user, dataset=dataset, config={"model": "yolo11n", "epochs": 3, "registered_model": "shapes"}
    )

    response = complete_training(job)

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert ModelVersion.objects.filter(training_job=job).exists()
