"""Training job services: create, claim (compare-and-set), cancel, reap, renew the lease."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from datasets.choices import DatasetStatus
from jobs import services
from jobs.choices import EventKind, JobStatus
from jobs.models import Job
from jobs.services import broker_priority
from portal.errors import ConflictError
from tests.factories import DatasetFactory, TrainingJobFactory

URL = "/api/v1/training-jobs/"

pytestmark = pytest.mark.django_db


def event_kinds(job):
    return list(job.events.values_list("kind", flat=True))


def after_lease():
    """A moment just after a lease granted now would have lapsed."""
    return timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1)


# --- create


@pytest.mark.parametrize("status", [DatasetStatus.VALIDATING, DatasetStatus.INVALID])
def test_create_via_api_refuses_a_dataset_that_is_not_ready(user, api, status, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(owner=user, status=status)

    with (
        mock.patch("jobs.tasks.job_run.apply_async") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = api(user).post(URL, {"dataset": dataset.pk, "epochs": 3, "imgsz": 64}, format="json")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["fields"] == {"dataset": [f"Data set is {status}."]}
    assert not Job.objects.exists()
    delay.assert_not_called()


def test_create_via_api_refuses_another_users_dataset(user, other_user, api):
    dataset = DatasetFactory(owner=other_user)

    response = api(user).post(URL, {"dataset": dataset.pk}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"dataset": ["Unknown data set."]}
    assert not Job.objects.exists()


def test_create_via_api_validates_the_config(user, api):
    dataset = DatasetFactory(owner=user)

    response = api(user).post(URL, {"dataset": dataset.pk, "imgsz": 100, "model": "resnet50"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"imgsz", "model"}
    assert not Job.objects.exists()


def test_create_via_api_queues_the_job_and_enqueues_it_on_commit(user, api, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(owner=user)

    with mock.patch("jobs.tasks.job_run.apply_async") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = api(user).post(URL, {"dataset": dataset.pk, "epochs": 3, "imgsz": 64}, format="json")
        assert response.status_code == 202, response.content
        delay.assert_not_called()
        for callback in callbacks:
            callback()

    body = response.json()
    delay.assert_called_once_with(args=[body["id"]], queue="gpu", priority=broker_priority(5))
    assert body["status"] == "queued"
    assert body["epochs"] == 3
    assert body["config"]["model"] == "yolo11n"
    assert body["config"]["imgsz"] == 64
    job = Job.objects.get(pk=body["id"])
    assert job.owner == user
    assert job.dataset == dataset
    assert job.max_attempts == settings.JOB_MAX_ATTEMPTS
    assert event_kinds(job) == [EventKind.QUEUED]


def test_create_service_refuses_a_dataset_that_is_not_ready(user):
    dataset = DatasetFactory(owner=user, status=DatasetStatus.VALIDATING)

    with pytest.raises(ConflictError):
        services.training_job_create(owner=user, dataset=dataset, config={"epochs": 3})

    assert not Job.objects.exists()


# --- claim


def test_claim_is_a_compare_and_set():
    job = TrainingJobFactory()

    first = services.job_claim(job_id=job.pk, worker="node-a:1")
    second = services.job_claim(job_id=job.pk, worker="node-b:2")

    assert second is None
    claimed, token = first
    assert claimed.status == JobStatus.RUNNING
    assert claimed.attempt == 1
    assert claimed.fencing_token == 1
    assert claimed.worker == "node-a:1"
    assert claimed.callback_token_hash == services.token_hash(token)
    assert claimed.lease_until > timezone.now()
    job.refresh_from_db()
    assert (job.worker, job.attempt, job.fencing_token) == ("node-a:1", 1, 1)
    assert event_kinds(job) == [EventKind.CLAIMED]


def test_a_second_attempt_increments_attempt_and_fencing_token():
    job = TrainingJobFactory()
    _, first_token = services.job_claim(job_id=job.pk, worker="a")
    assert services.jobs_reap(now=after_lease()) == [job.pk]

    claimed, second_token = services.job_claim(job_id=job.pk, worker="b")

    assert (claimed.attempt, claimed.fencing_token) == (2, 2)
    assert second_token != first_token
    assert claimed.callback_token_hash == services.token_hash(second_token)


def test_claim_refuses_a_job_without_attempts_left():
    job = TrainingJobFactory(attempt=3, max_attempts=3)

    assert services.job_claim(job_id=job.pk, worker="a") is None
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED


# --- cancel


def test_cancel_queued_job_cancels_it_and_it_is_never_claimable():
    job = TrainingJobFactory()

    services.job_cancel(job=job)

    assert job.status == JobStatus.CANCELLED
    assert job.finished_at is not None
    assert services.job_claim(job_id=job.pk, worker="a") is None
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert event_kinds(job) == [EventKind.CANCELLED]


def test_cancel_running_job_asks_its_launcher_to_stop():
    job = TrainingJobFactory()
    claimed, _ = services.job_claim(job_id=job.pk, worker="a")

    services.job_cancel(job=job)

    assert job.status == JobStatus.CANCELLING
    assert event_kinds(job)[-1] == EventKind.CANCEL_REQUESTED
    # The launcher learns it on its next lease renewal.
    assert services.job_renew_lease(job_id=job.pk, fencing_token=claimed.fencing_token) == "cancelling"


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CANCELLING])
def test_cancel_is_refused_in_other_states(status):
    job = TrainingJobFactory(status=status)

    with pytest.raises(ConflictError, match=f"is {status} and cannot be cancelled"):
        services.job_cancel(job=job)

    job.refresh_from_db()
    assert job.status == status
    assert event_kinds(job) == []


def test_cancel_via_api(user, other_user, api):
    job = TrainingJobFactory(owner=user)
    done = TrainingJobFactory(owner=user, status=JobStatus.COMPLETED)

    assert api(other_user).post(f"{URL}{job.pk}/cancel/").status_code == 404
    response = api(user).post(f"{URL}{job.pk}/cancel/")
    refused = api(user).post(f"{URL}{done.pk}/cancel/")

    assert response.status_code == 202
    assert response.json()["status"] == "cancelled"
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict"


# --- reap


def test_reap_requeues_a_job_whose_lease_expired(django_capture_on_commit_callbacks):
    job = TrainingJobFactory()
    services.job_claim(job_id=job.pk, worker="a")

    with (
        mock.patch("jobs.tasks.job_run.apply_async") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        requeued = services.jobs_reap(now=after_lease())

    assert requeued == [job.pk]
    delay.assert_called_once_with(args=[job.pk], queue="gpu", priority=broker_priority(5))
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job.lease_until is None
    assert job.callback_token_hash == ""
    assert job.fencing_token == 1
    event = job.events.last()
    assert event.kind == EventKind.REQUEUED
    assert event.payload == {"reason": "the worker stopped renewing its lease (attempt 1)", "attempt": 1}


def test_reap_fails_a_job_that_used_all_its_attempts():
    job = TrainingJobFactory(max_attempts=2)
    for _ in range(2):
        assert services.job_claim(job_id=job.pk, worker="a") is not None
        reaped = services.jobs_reap(now=after_lease())

    assert reaped == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.attempt == 2
    assert job.error == "the worker stopped renewing its lease (attempt 2); all 2 attempts used"
    assert job.finished_at is not None
    assert event_kinds(job)[-1] == EventKind.FAILED
    assert services.job_claim(job_id=job.pk, worker="a") is None


def test_reap_finishes_the_cancel_of_a_cancelling_job_whose_lease_expired():
    job = TrainingJobFactory()
    services.job_claim(job_id=job.pk, worker="a")
    services.job_cancel(job=job)

    assert services.jobs_reap(now=after_lease()) == []

    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert event_kinds(job)[-1] == EventKind.CANCELLED


def test_reap_leaves_a_fresh_lease_alone():
    job = TrainingJobFactory()
    claimed, _ = services.job_claim(job_id=job.pk, worker="a")

    assert services.jobs_reap() == []

    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.lease_until == claimed.lease_until
    assert job.callback_token_hash == claimed.callback_token_hash
    assert event_kinds(job) == [EventKind.CLAIMED]


def test_reap_ignores_queued_and_finished_jobs():
    queued = TrainingJobFactory()
    done = TrainingJobFactory(status=JobStatus.COMPLETED, lease_until=timezone.now() - timedelta(hours=1))

    assert services.jobs_reap(now=after_lease()) == []

    assert Job.objects.get(pk=queued.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=done.pk).status == JobStatus.COMPLETED


# --- lease renewal


def test_renew_lease_extends_the_lease_of_the_current_attempt():
    job = TrainingJobFactory()
    claimed, _ = services.job_claim(job_id=job.pk, worker="a")
    Job.objects.filter(pk=job.pk).update(lease_until=timezone.now() + timedelta(seconds=1))

    assert services.job_renew_lease(job_id=job.pk, fencing_token=claimed.fencing_token) == "running"

    job.refresh_from_db()
    assert job.lease_until > timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS - 5)


def test_renew_lease_returns_none_for_a_stale_fencing_token():
    job = TrainingJobFactory()
    services.job_claim(job_id=job.pk, worker="a")
    services.jobs_reap(now=after_lease())
    current, _ = services.job_claim(job_id=job.pk, worker="b")

    assert services.job_renew_lease(job_id=job.pk, fencing_token=1) is None

    job.refresh_from_db()
    assert job.lease_until == current.lease_until
    assert services.job_renew_lease(job_id=job.pk, fencing_token=2) == "running"


def test_renew_lease_returns_none_once_the_job_is_over():
    job = TrainingJobFactory()
    claimed, _ = services.job_claim(job_id=job.pk, worker="a")
    assert services.job_fail(job_id=job.pk, fencing_token=claimed.fencing_token, error="boom")

    assert services.job_renew_lease(job_id=job.pk, fencing_token=claimed.fencing_token) is None
