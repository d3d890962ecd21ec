"""The training-job API: config validation, defaults, fine-tuning, retry, compare, log, events, detail."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from jobs import services
from jobs.choices import AttemptOutcome, EventKind, JobKind, JobStatus
from jobs.models import Checkpoint, Job, JobEvent
from jobs.services import broker_priority
from models_registry.choices import ReviewStatus
from models_registry.models import BaseModel
from tests.factories import DatasetFactory, ModelVersionFactory, TrainingJobFactory, ValidationJobFactory

URL = "/api/v1/training-jobs/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(user):
    return DatasetFactory(owner=user)


@pytest.fixture
def enqueued():
    """The Celery task's apply_async, mocked: what would have been sent to a GPU worker."""
    with mock.patch("jobs.tasks.job_run.apply_async") as apply_async:
        yield apply_async


@pytest.fixture
def base_model(staff_user):
    return BaseModel.objects.create(
        name="yolo11n-coco", weights="base-models/yolo11n-coco.pt", sha256="b" * 64, size=10, uploaded_by=staff_user
    )


def post(client, data, capture):
    with capture(execute=True):
        return client.post(URL, data, format="json")


def assert_invalid(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["code"] == "invalid"
    assert isinstance(error["message"], str) and error["message"]
    assert set(error["fields"]) == {field}
    assert error["fields"][field] and all(isinstance(m, str) for m in error["fields"][field])
    return error


# --- config validation


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": "resnet50"}, "model"),
        ({"model": "yolo11q"}, "model"),
        ({"imgsz": 100}, "imgsz"),
        ({"imgsz": 16}, "imgsz"),
        ({"device": "gpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"device": "cuda:0;rm -rf /"}, "device"),
        ({"optimizer": "Adagrad"}, "optimizer"),
        ({"lr0": 0}, "lr0"),
        ({"lr0": 1.5}, "lr0"),
        ({"augment": {"blur": 0.1}}, "augment"),
        ({"augment": {"fliplr": 2}}, "augment"),
        ({"augment": {"mosaic": "yes"}}, "augment"),
        ({"augment": {"flipud": True}}, "augment"),
        ({"queue": "cpu"}, "queue"),
        ({"priority": 10}, "priority"),
        ({"priority": -1}, "priority"),
        ({"epochs": 0}, "epochs"),
    ],
    ids=lambda value: str(value),
)
def test_invalid_config_is_refused_with_a_field_error(
    user, api, dataset, enqueued, django_capture_on_commit_callbacks, config, field
):
    response = post(api(user), {"dataset": dataset.pk, **config}, django_capture_on_commit_callbacks)

    error = assert_invalid(response, field)
    assert error["message"].startswith(f"{field}: ")
    assert not Job.objects.exists()
    enqueued.assert_not_called()


def test_augmentation_errors_name_each_bad_key(user, api, dataset):
    response = api(user).post(
        URL, {"dataset": dataset.pk, "augment": {"blur": 1, "fliplr": 2, "mosaic": 0.5}}, format="json"
    )

    messages = assert_invalid(response, "augment")["fields"]["augment"]
    assert len(messages) == 2
    assert any("blur" in message for message in messages)
    assert any("fliplr" in message for message in messages)


def test_base_model_and_fine_tune_from_together_are_refused(user, api, dataset, base_model, enqueued):
    version = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.APPROVED)

    response = api(user).post(
        URL, {"dataset": dataset.pk, "base_model": base_model.pk, "fine_tune_from": version.pk}, format="json"
    )

    assert_invalid(response, "base_model")
    assert not Job.objects.exists()


def test_missing_dataset_is_a_field_error(user, api):
    assert_invalid(api(user).post(URL, {"epochs": 3}, format="json"), "dataset")


def test_anonymous_cannot_create(dataset):
    from rest_framework.test import APIClient

    response = APIClient().post(URL, {"dataset": dataset.pk}, format="json")

    assert response.status_code in (401, 403)
    assert not Job.objects.exists()


# --- a valid config


def test_valid_config_gets_defaults_and_is_enqueued_on_commit(
    user, api, dataset, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api(user).post(URL, {"dataset": dataset.pk}, format="json")
    assert response.status_code == 202, response.content
    enqueued.assert_not_called()  # not before the row is committed
    for callback in callbacks:
        callback()

    body = response.json()
    enqueued.assert_called_once_with(args=[body["id"]], queue="gpu", priority=broker_priority(5))
    assert body["kind"] == JobKind.TRAIN
    assert body["status"] == JobStatus.QUEUED
    assert (body["queue"], body["priority"]) == ("gpu", 5)
    config = body["config"]
    assert config["optimizer"] == "auto"
    assert config["priority"] == 5
    assert config["queue"] == "gpu"
    assert config["model"] == "yolo11n"
    assert config["epochs"] == body["epochs"] == 50
    assert config["imgsz"] == 640
    assert config["augment"] == {}
    assert config["validate_after"] is True
    assert "dataset" not in config
    job = Job.objects.get(pk=body["id"])
    assert job.config == config
    assert job.model_version is None
    assert body["fine_tune_from"] is None


def test_queue_and_priority_from_the_config_route_the_task(
    user, api, dataset, enqueued, settings, django_capture_on_commit_callbacks
):
    settings.JOB_QUEUES = ["gpu", "gpu-large"]

    response = post(
        api(user),
        {"dataset": dataset.pk, "queue": "gpu-large", "priority": 8, "device": "0,1", "augment": {"fliplr": 0}},
        django_capture_on_commit_callbacks,
    )

    assert response.status_code == 202, response.content
    body = response.json()
    enqueued.assert_called_once_with(args=[body["id"]], queue="gpu-large", priority=broker_priority(8))
    job = Job.objects.get(pk=body["id"])
    assert (job.queue, job.priority) == ("gpu-large", 8)
    assert job.config["device"] == "0,1"
    assert job.config["augment"] == {"fliplr": 0}


# --- fine-tuning and base models


def test_fine_tune_from_a_pending_version_is_refused(user, api, dataset, enqueued):
    version = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.PENDING_REVIEW)

    response = api(user).post(URL, {"dataset": dataset.pk, "fine_tune_from": version.pk}, format="json")

    assert_invalid(response, "fine_tune_from")
    assert response.json()["error"]["fields"] == {"fine_tune_from": ["Not approved."]}
    assert not Job.objects.exists()


def test_fine_tune_from_another_users_version_is_unknown(user, other_user, api, dataset):
    version = ModelVersionFactory(registered_model__owner=other_user, review_status=ReviewStatus.APPROVED)

    response = api(user).post(URL, {"dataset": dataset.pk, "fine_tune_from": version.pk}, format="json")

    assert response.json()["error"]["fields"] == {"fine_tune_from": ["Unknown model version."]}
    assert response.status_code == 400
    assert not Job.objects.exists()


def test_fine_tune_from_an_approved_version_sets_the_model_version(
    user, api, dataset, enqueued, django_capture_on_commit_callbacks
):
    version = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.APPROVED)

    response = post(
        api(user), {"dataset": dataset.pk, "fine_tune_from": version.pk}, django_capture_on_commit_callbacks
    )

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["fine_tune_from"] == version.pk
    assert body["model_version"] is None  # the version this run will produce, not the one it started from
    assert Job.objects.get(pk=body["id"]).model_version == version
    enqueued.assert_called_once()


def test_unknown_base_model_is_refused(user, api, dataset):
    response = api(user).post(URL, {"dataset": dataset.pk, "base_model": 987654}, format="json")

    assert_invalid(response, "base_model")
    assert response.json()["error"]["fields"] == {"base_model": ["Unknown base model."]}
    assert not Job.objects.exists()


def test_a_known_base_model_is_kept_in_the_config(user, api, dataset, base_model, enqueued):
    response = api(user).post(URL, {"dataset": dataset.pk, "base_model": base_model.pk}, format="json")

    assert response.status_code == 202, response.content
    assert Job.objects.get(pk=response.json()["id"]).config["base_model"] == base_model.pk


# --- retry


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
def test_retry_of_a_failed_or_cancelled_job_starts_a_new_one(
    user, api, enqueued, django_capture_on_commit_callbacks, status
):
    config = {"model": "yolo11s", "epochs": 7, "imgsz": 320, "batch": 8, "queue": "gpu", "priority": 3}
    old = TrainingJobFactory(owner=user, status=status, config=config, epochs=7, priority=3)

    with django_capture_on_commit_callbacks(execute=True):
        response = api(user).post(f"{URL}{old.pk}/retry/")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] != old.pk
    assert body["retry_of"] == old.pk
    assert body["status"] == JobStatus.QUEUED
    assert body["config"] == config
    new = Job.objects.get(pk=body["id"])
    assert (new.retry_of, new.dataset, new.owner, new.epochs) == (old, old.dataset, user, 7)
    assert (new.attempt, new.fencing_token) == (0, 0)
    enqueued.assert_called_once_with(args=[new.pk], queue="gpu", priority=broker_priority(3))
    old.refresh_from_db()
    assert old.status == status


def test_retry_keeps_the_version_it_fine_tuned_from(user, api, enqueued):
    version = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.APPROVED)
    old = TrainingJobFactory(owner=user, status=JobStatus.FAILED, model_version=version)

    response = api(user).post(f"{URL}{old.pk}/retry/")

    assert response.status_code == 202, response.content
    assert Job.objects.get(pk=response.json()["id"]).model_version == version


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.COMPLETED])
def test_retry_of_a_live_or_completed_job_is_a_conflict(user, api, enqueued, status):
    old = TrainingJobFactory(owner=user, status=status)

    response = api(user).post(f"{URL}{old.pk}/retry/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Job.objects.count() == 1
    enqueued.assert_not_called()


def test_retry_of_another_users_job_is_not_found(user, other_user, api, enqueued):
    old = TrainingJobFactory(owner=other_user, status=JobStatus.FAILED)

    assert api(user).post(f"{URL}{old.pk}/retry/").status_code == 404
    assert Job.objects.count() == 1


# --- compare


def epoch_event(job, epoch, metrics, attempt=1):
    return JobEvent.objects.create(
        job=job, kind=EventKind.EPOCH, attempt=attempt, payload={"epoch": epoch, "metrics": metrics}
    )


def test_compare_returns_jobs_in_the_asked_order_with_their_history(user, api):
    first = TrainingJobFactory(owner=user, metrics={"mAP50": 0.3})
    second = TrainingJobFactory(owner=user, metrics={"mAP50": 0.5})
    epoch_event(first, 1, {"loss": 2.0})
    epoch_event(second, 1, {"loss": 1.5, "mAP50": 0.2})
    epoch_event(first, 2, {"loss": 1.0})
    JobEvent.objects.create(job=first, kind=EventKind.LOG, payload={"lines": ["not an epoch"]})
    epoch_event(second, 2, {"loss": 1.2, "mAP50": 0.5})

    response = api(user).get(f"{URL}compare/", {"ids": f"{second.pk},{first.pk}"})

    assert response.status_code == 200, response.content
    jobs = response.json()["jobs"]
    assert [row["id"] for row in jobs] == [second.pk, first.pk]
    assert jobs[0]["history"] == [{"epoch": 1, "loss": 1.5, "mAP50": 0.2}, {"epoch": 2, "loss": 1.2, "mAP50": 0.5}]
    assert jobs[1]["history"] == [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]
    assert jobs[0]["metrics"] == {"mAP50": 0.5}
    assert jobs[1]["config"] == first.config
    assert jobs[1]["dataset"] == first.dataset_id
    assert jobs[1]["status"] == JobStatus.QUEUED


def test_compare_history_takes_the_resumed_attempts_epoch(user, api):
    job = TrainingJobFactory(owner=user)
    epoch_event(job, 1, {"loss": 2.0}, attempt=1)
    epoch_event(job, 2, {"loss": 1.8}, attempt=1)
    epoch_event(job, 3, {"loss": 1.7}, attempt=1)  # the attempt died before its checkpoint was synced
    epoch_event(job, 2, {"loss": 1.5}, attempt=2)  # resumed from epoch 1: epochs 2 and 3 are trained again
    epoch_event(job, 3, {"loss": 1.1}, attempt=2)

    response = api(user).get(f"{URL}compare/", {"ids": str(job.pk)})

    assert response.json()["jobs"][0]["history"] == [
        {"epoch": 1, "loss": 2.0},
        {"epoch": 2, "loss": 1.5},
        {"epoch": 3, "loss": 1.1},
    ]


def test_compare_silently_leaves_out_other_users_and_validation_jobs(user, other_user, api):
    mine = TrainingJobFactory(owner=user)
    theirs = TrainingJobFactory(owner=other_user)
    validation = ValidationJobFactory(owner=user)

    response = api(user).get(f"{URL}compare/", {"ids": f"{theirs.pk},{mine.pk},{validation.pk},999999"})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["jobs"]] == [mine.pk]


@pytest.mark.parametrize("ids", ["a,b", "1,x", "", ",", ",".join(str(n) for n in range(1, 22))])
def test_compare_refuses_bad_ids(user, api, ids):
    response = api(user).get(f"{URL}compare/", {"ids": ids})

    assert_invalid(response, "ids")


# --- log tail


@pytest.fixture
def logged_job(user):
    job = TrainingJobFactory(owner=user)
    JobEvent.objects.create(job=job, kind=EventKind.LOG, attempt=1, payload={"lines": ["a1", "a2"]})
    JobEvent.objects.create(job=job, kind=EventKind.EPOCH, attempt=1, payload={"epoch": 1, "metrics": {}})
    JobEvent.objects.create(job=job, kind=EventKind.LOG, attempt=1, payload={"lines": ["a3"]})
    JobEvent.objects.create(job=job, kind=EventKind.LOG, attempt=2, payload={"lines": ["b1", "b2"]})
    return job


def test_log_returns_the_last_lines_prefixed_with_their_attempt(user, api, logged_job):
    response = api(user).get(f"{URL}{logged_job.pk}/log/", {"lines": 3})

    assert response.status_code == 200
    assert response.json() == {"job": logged_job.pk, "lines": ["[attempt 1] a3", "[attempt 2] b1", "[attempt 2] b2"]}


def test_log_default_returns_every_line_in_order(user, api, logged_job):
    for params in ({}, {"lines": "200"}):
        response = api(user).get(f"{URL}{logged_job.pk}/log/", params)
        assert response.json()["lines"] == [
            "[attempt 1] a1",
            "[attempt 1] a2",
            "[attempt 1] a3",
            "[attempt 2] b1",
            "[attempt 2] b2",
        ]


@pytest.mark.parametrize("lines", ["0", "lots", "5001", "-1"])
def test_log_refuses_a_line_count_outside_1_to_5000(user, api, logged_job, lines):
    response = api(user).get(f"{URL}{logged_job.pk}/log/", {"lines": lines})

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"lines": ["1 to 5000."]}


def test_log_of_another_users_job_is_not_found(other_user, api, logged_job):
    assert api(other_user).get(f"{URL}{logged_job.pk}/log/").status_code == 404


# --- events


def test_events_after_an_id_returns_only_later_events(user, api):
    job = TrainingJobFactory(owner=user)
    events = [
        JobEvent.objects.create(job=job, kind=EventKind.LOG, attempt=1, payload={"lines": [str(n)]}) for n in range(4)
    ]
    JobEvent.objects.create(job=TrainingJobFactory(owner=user), kind=EventKind.LOG, payload={"lines": ["other"]})

    everything = api(user).get(f"{URL}{job.pk}/events/").json()
    later = api(user).get(f"{URL}{job.pk}/events/", {"after": events[1].pk}).json()
    ignored = api(user).get(f"{URL}{job.pk}/events/", {"after": "soon"}).json()

    assert [e["id"] for e in everything["results"]] == [e.pk for e in events]
    assert [e["id"] for e in later["results"]] == [events[2].pk, events[3].pk]
    assert later["count"] == 2
    assert later["results"][0] == {
        "id": events[2].pk,
        "kind": "log",
        "attempt": 1,
        "payload": {"lines": ["2"]},
        "created_at": later["results"][0]["created_at"],
    }
    assert ignored["count"] == 4


# --- detail


def test_detail_shows_attempts_checkpoints_heartbeat_and_staleness(user, api):
    job = TrainingJobFactory(owner=user)
    services.job_claim(job_id=job.pk, worker="node-a:1", device="cuda:0")
    Checkpoint.objects.create(
        job=job, attempt=1, epoch=2, kind="last", storage_name=f"jobs/{job.pk}/c.pt", sha256="c" * 64, size=5
    )
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        last_heartbeat_at=now - timedelta(seconds=30), lease_until=now + timedelta(seconds=60)
    )

    fresh = api(user).get(f"{URL}{job.pk}/").json()
    Job.objects.filter(pk=job.pk).update(lease_until=now - timedelta(seconds=5))
    stale = api(user).get(f"{URL}{job.pk}/").json()

    assert fresh["stale"] is False
    assert stale["stale"] is True
    assert 29 <= fresh["heartbeat_age_seconds"] < 60
    assert fresh["attempts"] == [
        {
            "number": 1,
            "worker": "node-a:1",
            "device": "cuda:0",
            "resumed_from_epoch": None,
            "outcome": AttemptOutcome.RUNNING,
            "exit_code": None,
            "detail": "",
            "started_at": fresh["attempts"][0]["started_at"],
            "ended_at": None,
        }
    ]
    assert fresh["checkpoints"] == [
        {
            "epoch": 2,
            "kind": "last",
            "attempt": 1,
            "sha256": "c" * 64,
            "size": 5,
            "created_at": fresh["checkpoints"][0]["created_at"],
        }
    ]
    assert "storage_name" not in fresh["checkpoints"][0]
    assert fresh["status"] == JobStatus.RUNNING


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.COMPLETED, JobStatus.FAILED])
def test_a_job_that_is_not_running_is_never_stale(user, api, status):
    job = TrainingJobFactory(owner=user, status=status, lease_until=timezone.now() - timedelta(hours=1))

    body = api(user).get(f"{URL}{job.pk}/").json()

    assert body["stale"] is False
    assert body["heartbeat_age_seconds"] is None
    assert body["attempts"] == []
    assert body["checkpoints"] == []
