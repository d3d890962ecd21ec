"""Inference jobs: create from files or a zip, per-image callbacks, results API, launcher, CLI."""

import base64
import io
import sys
import zipfile
from types import SimpleNamespace
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from jobs import services as job_services
from jobs.choices import EventKind, JobKind, JobStatus
from jobs.launcher import JobRun
from jobs.models import Job
from models_registry.choices import ReviewStatus
from serving.models import InferenceResult
from tests import datagen
from tests.factories import ModelVersionFactory
from trainers.ultralytics import predict as predict_cli

pytestmark = pytest.mark.django_db
URL = "/api/v1/inference-jobs/"
BOX = {"class_id": 0, "class_name": "square", "confidence": 0.8, "bbox": [4.0, 4.0, 30.0, 30.0]}


@pytest.fixture
def version(user, media_root):
    return ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.APPROVED)


@pytest.fixture
def enqueue():
    with mock.patch("jobs.tasks.job_run.apply_async") as apply_async:
        yield apply_async


def images(count, size=48):
    return [
        ("images", (f"img{i}.jpg", datagen.sample_image_bytes(size=size, seed=i), "image/jpeg")) for i in range(count)
    ]


def create(client, version, files, **fields):
    payload = {"model_version": version.pk, **fields}
    for key, upload in files:
        payload.setdefault(key, []).append(SimpleUploadedFile(*upload))
    return client.post(URL, payload, format="multipart")


@pytest.fixture
def queued(user, api, version, enqueue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = create(api(user), version, images(3), conf=0.2, imgsz=64)
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def claim(job):
    claimed, token = job_services.job_claim(job_id=job.pk, worker="test-worker")
    return claimed, token


def callback(job, token, payload):
    return APIClient().post(
        f"/api/v1/jobs/{job.pk}/callbacks/",
        {"fencing_token": job.fencing_token, **payload},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def result(index, **extra):
    return {"index": index, "width": 48, "height": 48, "predictions": [BOX], "inference_time_ms": 3.5, **extra}


# --- create


def test_creating_from_image_files_stores_them_and_queues_a_gpu_job(user, queued, enqueue):
    assert queued.kind == JobKind.INFER and queued.status == JobStatus.QUEUED and queued.queue == "gpu"
    inputs = queued.config["inputs"]
    assert [item["name"] for item in inputs] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert all(default_storage.exists(item["storage_name"]) for item in inputs)
    assert queued.config["conf"] == 0.2 and queued.config["imgsz"] == 64
    enqueue.assert_called_once()
    assert enqueue.call_args.kwargs["args"] == [queued.pk] and enqueue.call_args.kwargs["queue"] == "gpu"


def test_creating_from_a_zip_takes_its_images_only(user, api, version, enqueue):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/one.jpg", datagen.sample_image_bytes(size=32))
        archive.writestr("two.png", datagen.sample_image_bytes(size=32))
        archive.writestr("notes.txt", b"not an image")
    response = create(api(user), version, [("archive", ("batch.zip", buffer.getvalue(), "application/zip"))])

    assert response.status_code == 202, response.content
    assert response.json()["images"] == 2
    job = Job.objects.get(pk=response.json()["id"])
    assert [item["name"] for item in job.config["inputs"]] == ["one.jpg", "two.png"]


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ([], 400, "invalid"),
        ([("images", ("x.jpg", b"<html>", "image/jpeg"))], 400, "not_an_image"),
        ([("images", ("x.html", b"<html>", "text/html"))], 400, "bad_content_type"),
        ([("archive", ("x.zip", b"not a zip", "application/zip"))], 400, "bad_archive"),
    ],
    ids=["nothing", "not-an-image", "content-type", "bad-zip"],
)
def test_bad_input_is_refused_and_queues_nothing(user, api, version, enqueue, files, status, code):
    response = create(api(user), version, files)

    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not Job.objects.exists()
    enqueue.assert_not_called()


def test_too_many_images_is_413(user, api, version, enqueue, settings):
    settings.INFERENCE_MAX_IMAGES = 2

    response = create(api(user), version, images(3))

    assert response.status_code == 413 and not Job.objects.exists()


def test_more_files_than_a_request_may_carry_is_413_with_a_hint(user, api, version, enqueue, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2

    response = create(api(user), version, images(3))

    assert response.status_code == 413
    assert "zip" in response.json()["error"]["message"]
    assert not Job.objects.exists()


def test_a_version_that_is_not_approved_is_a_conflict(user, api, media_root, enqueue):
    pending = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.PENDING_REVIEW)

    assert create(api(user), pending, images(1)).status_code == 409


def test_another_users_version_and_jobs_are_unknown(user, other_user, api, version, queued):
    assert create(api(other_user), version, images(1)).status_code == 400
    assert api(other_user).get(f"{URL}{queued.pk}/").status_code == 404
    assert api(other_user).get(f"{URL}{queued.pk}/results/").status_code == 404
    assert api(other_user).get(URL).json()["count"] == 0


# --- callbacks


def test_predictions_are_stored_per_image_with_progress(queued):
    job, token = claim(queued)

    response = callback(job, token, {"type": "predictions", "results": [result(0), result(1)]})

    assert response.status_code == 200, response.content
    rows = list(InferenceResult.objects.filter(job=job))
    assert [(r.index, r.name, r.predictions) for r in rows] == [(0, "img0.jpg", [BOX]), (1, "img1.jpg", [BOX])]
    assert rows[0].image.name == job.config["inputs"][0]["storage_name"]
    job.refresh_from_db()
    assert job.progress == pytest.approx(66.67)
    event = job.events.get(kind=EventKind.PREDICTIONS)
    assert event.payload["images_done"] == 2 and event.payload["images"] == 3


def test_a_repeated_image_from_a_resumed_attempt_is_not_stored_twice(queued):
    job, token = claim(queued)
    callback(job, token, {"type": "predictions", "results": [result(0)]})

    response = callback(job, token, {"type": "predictions", "results": [result(0), result(2)]})

    assert response.status_code == 200
    assert sorted(InferenceResult.objects.values_list("index", flat=True)) == [0, 2]


@pytest.mark.parametrize("bad", [{"index": 3}, {"index": -1}, {"index": "0"}, {"predictions": "x"}])
def test_a_result_that_does_not_name_one_of_the_jobs_images_is_refused(queued, bad):
    job, token = claim(queued)

    response = callback(job, token, {"type": "predictions", "results": [{**result(0), **bad}]})

    assert response.status_code == 400
    assert not InferenceResult.objects.exists()


def test_completion_needs_every_image_and_keeps_the_throughput(queued):
    job, token = claim(queued)
    callback(job, token, {"type": "predictions", "results": [result(0), result(1)]})
    assert callback(job, token, {"type": "completed"}).status_code == 409

    callback(job, token, {"type": "predictions", "results": [result(2, error="unreadable image")]})
    callback(job, token, {"type": "done", "metrics": {"images_per_second": 12.5}})
    response = callback(job, token, {"type": "completed"})

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and job.progress == 100.0
    assert job.metrics == {"images_per_second": 12.5, "images": 3.0}


def test_other_job_kinds_cannot_report_predictions(user, media_root):
    from tests.factories import TrainingJobFactory

    job, token = claim(TrainingJobFactory(owner=user))

    assert callback(job, token, {"type": "predictions", "results": [result(0)]}).status_code == 400


# --- results API


def finished(queued):
    job, token = claim(queued)
    callback(job, token, {"type": "predictions", "results": [result(0), result(1), result(2)]})
    callback(job, token, {"type": "completed"})
    return job


def test_results_are_paginated_and_annotated_on_request(user, api, queued):
    job = finished(queued)
    client = api(user)

    body = client.get(f"{URL}{job.pk}/").json()
    assert body["status"] == "completed" and body["images"] == 3 and body["images_done"] == 3
    assert "inputs" not in body["options"]
    page = client.get(f"{URL}{job.pk}/results/?page_size=2").json()
    assert page["count"] == 3 and page["next"]
    assert [row["index"] for row in page["results"]] == [0, 1]
    assert [row["index"] for row in client.get(page["next"]).json()["results"]] == [2]
    assert page["results"][0]["annotated_image"] is None
    annotated = client.get(f"{URL}{job.pk}/results/?annotated=true").json()["results"][0]["annotated_image"]
    assert Image.open(io.BytesIO(base64.b64decode(annotated))).format == "JPEG"


def test_a_results_image_plain_and_annotated(user, api, queued):
    job = finished(queued)
    client = api(user)

    plain = client.get(f"{URL}{job.pk}/results/1/image/")
    drawn = client.get(f"{URL}{job.pk}/results/1/image/?annotated=true")

    assert plain.status_code == 200 and plain["Content-Type"] == "image/jpeg"
    assert plain.content == default_storage.open(job.config["inputs"][1]["storage_name"]).read()
    assert drawn.status_code == 200 and drawn.content[:2] == b"\xff\xd8" and drawn.content != plain.content
    assert client.get(f"{URL}{job.pk}/results/9/image/").status_code == 404


def test_a_queued_inference_job_can_be_cancelled(user, api, queued):
    response = api(user).post(f"{URL}{queued.pk}/cancel/")

    assert response.status_code == 202 and response.json()["status"] == "cancelled"


# --- launcher and CLI


def test_the_launcher_gives_the_predict_cli_its_images_and_options(queued, settings, tmp_path):
    job, token = claim(queued)
    version = job.model_version
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"weights")

    with mock.patch("jobs.launcher.stored_file_local_copy", return_value=weights):
        env, module = JobRun(job, token).environment(None)

    assert module == "trainers.ultralytics.predict"
    assert env["CHECKPOINT_PATH"] == str(weights) and version.pk == job.model_version_id
    assert env["CONFIDENCE_THRESHOLD"] == "0.2" and env["IMGSZ"] == "64" and env["MAX_DET"] == "300"
    job.config = {**job.config, "imgsz": None}
    with mock.patch("jobs.launcher.stored_file_local_copy", return_value=weights):
        assert JobRun(job, token).environment(None)[0]["IMGSZ"] == ""
    inputs = sorted(p.name for p in (tmp_path / "work").rglob("inputs/*"))
    assert inputs == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert env["INPUT_DIR"].endswith("inputs")


class StubModel:
    names = {0: "square", 1: "disc"}

    def __init__(self):
        self.calls = []

    def predict(self, images, **options):
        images = images if isinstance(images, list) else [images]
        self.calls.append((len(images), options))
        boxes = SimpleNamespace(
            xyxy=mock.Mock(tolist=lambda: [[1.0, 2.0, 3.0, 4.0]]),
            conf=mock.Mock(tolist=lambda: [0.9]),
            cls=mock.Mock(tolist=lambda: [1.0]),
        )
        return [SimpleNamespace(boxes=boxes) for _ in images]


def test_the_cli_predicts_in_batches_and_reports_unreadable_images(tmp_path):
    for index in range(5):
        (tmp_path / f"{index:06d}.jpg").write_bytes(datagen.sample_image_bytes(size=32, seed=index))
    (tmp_path / "000005.jpg").write_bytes(b"broken")
    (tmp_path / "readme.txt").write_text("ignored")
    model = StubModel()

    batches = list(
        predict_cli.predict_batches(
            model, predict_cli.input_images(tmp_path), batch_size=4, options={"conf": 0.3, "imgsz": 64}
        )
    )

    assert [len(b) for b in batches] == [4, 2]
    assert [call[0] for call in model.calls] == [4, 1]
    assert model.calls[0][1] == {"conf": 0.3, "imgsz": 64, "verbose": False}
    first = batches[0][0]
    assert first["index"] == 0 and first["width"] == 32
    assert first["predictions"] == [
        {"class_id": 1, "class_name": "disc", "confidence": 0.9, "bbox": [1.0, 2.0, 3.0, 4.0]}
    ]
    assert batches[1][1]["index"] == 5 and "unreadable" in batches[1][1]["error"]


@pytest.mark.parametrize(
    ("every", "seconds", "posted"),
    [("2", "60", [2, 1]), ("100", "0", [2, 1]), ("100", "60", [3])],
    ids=["by-count", "by-time", "at-the-end"],
)
def test_the_cli_reports_results_in_batches_then_done(tmp_path, every, seconds, posted):
    for index in range(3):
        (tmp_path / f"{index:06d}.jpg").write_bytes(datagen.sample_image_bytes(size=32, seed=index))
    env = {
        "JOB_ID": "1",
        "CALLBACK_URL": "http://127.0.0.1:9/cb",
        "CALLBACK_TOKEN": "t",
        "FENCING_TOKEN": "1",
        "CHECKPOINT_PATH": "model.pt",
        "INPUT_DIR": str(tmp_path),
        "BATCH_SIZE": "2",
        "REPORT_EVERY": every,
        "REPORT_SECONDS": seconds,
        "CLASSES": "1",
    }
    sent = []
    model = StubModel()
    with (
        # A stand-in module: importing Ultralytics would patch PIL.Image.open for the whole test run.
        mock.patch.dict(sys.modules, {"ultralytics": SimpleNamespace(YOLO=lambda path: model)}),
        mock.patch.object(predict_cli.PortalReporter, "send", lambda self, kind, **f: sent.append((kind, f))),
    ):
        assert predict_cli.main(env) == 0

    kinds = [kind for kind, _ in sent]
    assert kinds == ["started"] + ["predictions"] * len(posted) + ["done"]
    # No IMGSZ: the checkpoint's own training size (Ultralytics keeps it in the model's overrides).
    assert all("imgsz" not in options and options["classes"] == [1] for _, options in model.calls)
    assert [count for count, _ in model.calls] == [1, 2, 1]  # the warm-up, then two batches
    assert [len(f["results"]) for kind, f in sent if kind == "predictions"] == posted
    assert sent[-1][1]["metrics"]["images_per_second"] > 0


def test_the_cli_refuses_a_bad_configuration(tmp_path):
    assert predict_cli.main({"FENCING_TOKEN": "1"}) == 2


def test_the_live_feed_snapshot_of_an_inference_job(queued):
    from jobs.selectors import job_snapshot

    snapshot = job_snapshot(queued)

    assert snapshot["type"] == "snapshot"
    assert snapshot["job"]["id"] == queued.pk and snapshot["job"]["status"] == "queued"


def test_a_failed_inference_job_is_not_retried_as_another_kind(queued, user):
    Job.objects.filter(pk=queued.pk).update(status=JobStatus.FAILED)
    queued.refresh_from_db()
    with pytest.raises(job_services.ConflictError, match="send its images again"):
        job_services.job_retry(job=queued, owner=user)
    assert Job.objects.count() == 1


def test_stored_inputs_are_removed_when_the_job_cannot_be_created(user, version, media_root):
    inputs = [SimpleNamespace(name=f"{i}.jpg", data=datagen.sample_image_bytes(seed=i)) for i in range(2)]
    with (
        mock.patch("jobs.services._job_announce", side_effect=RuntimeError("broker down")),
        pytest.raises(RuntimeError),
    ):
        job_services.inference_job_create(owner=user, model_version=version, images=inputs, config={})
    assert not Job.objects.exists()
    assert not any(media_root.rglob("*.jpg"))
