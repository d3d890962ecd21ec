"""Ingest as a job: the threshold, excluded files, previews and the manifest in storage, progress,
attempts that supersede each other, the reaper, and auto-train."""

import gzip
import io
import json
import zipfile
from datetime import timedelta
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from datasets import services
from datasets.cache import dataset_local_copy
from datasets.choices import DatasetStatus, FileStatus, IngestStage
from datasets.events import IngestSuperseded
from datasets.models import Dataset, dataset_storage_prefix
from tests import datagen
from tests.datasets.conftest import files_under
from tests.datasets.corpus import jpeg

pytestmark = pytest.mark.django_db


def with_bad_files(count=20):
    """A set of `count` good images plus one HTML page named .jpg and one label with a bad class id."""
    data = datagen.detection_zip(train=count - 5, val=5, extra={"images/train/page.jpg": b"<html></html>"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            payload = b"9 0.5 0.5 0.1 0.1\n" if info.filename == "labels/train/img003.txt" else source.read(info)
            target.writestr(info.filename, payload)
    return buffer.getvalue()


def test_below_the_threshold_the_set_is_ready_and_bad_files_never_reach_training(user, ingested, other_node, settings):
    settings.DATASET_MAX_ERROR_RATIO = 0.1
    dataset = ingested(user, with_bad_files(20))

    assert dataset.status == DatasetStatus.READY
    assert dataset.num_images == 19
    assert dataset.stats["excluded"] == ["images/train/img003.jpg", "images/train/page.jpg"]
    assert dataset.stats["excluded_count"] == 2
    assert {"file": "labels/train/img003.txt", "line": 1, "reason": "class id 9 is out of range 0..1"} in dataset.errors
    assert any(e["file"] == "images/train/page.jpg" for e in dataset.errors)
    files = {f.path: f for f in dataset.files.all()}
    assert files["images/train/page.jpg"].status == FileStatus.EXCLUDED
    assert files["labels/train/img003.txt"].status == FileStatus.EXCLUDED
    assert files["images/train/img003.jpg"].status == FileStatus.EXCLUDED
    assert files["images/train/img004.jpg"].status == FileStatus.OK
    for root in (dataset_local_copy(dataset), (other_node(), dataset_local_copy(dataset))[1]):
        for gone in ("images/train/page.jpg", "images/train/img003.jpg", "labels/train/img003.txt"):
            assert not (root / gone).exists()
        assert (root / "images/val/img003.jpg").is_file()
        assert len(list((root / "images" / "train").iterdir())) == 14


def test_above_the_threshold_the_set_is_invalid_with_the_report(user, ingested, settings, media_root):
    settings.DATASET_MAX_ERROR_RATIO = 0.05

    dataset = ingested(user, with_bad_files(20))

    assert dataset.status == DatasetStatus.INVALID
    assert dataset.errors[0] == {
        "file": None,
        "line": None,
        "reason": "2 of 21 image files are unusable, above the 5% threshold",
    }
    assert dataset.files.filter(has_problems=True).count() == 2
    assert dataset.stage == IngestStage.DONE and dataset.progress == 100.0


def test_duplicates_are_set_aside_without_counting_against_the_threshold(user, ingested):
    data = datagen.detection_zip(train=6, val=2)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        copy = archive.read("images/train/img001.jpg")
    dataset = ingested(user, datagen.detection_zip(train=6, val=2, extra={"images/val/again.jpg": copy}))

    assert dataset.status == DatasetStatus.READY
    assert {
        "file": "images/val/again.jpg",
        "line": None,
        "reason": "same content as images/train/img001.jpg (the same image is in train and val)",
    } in dataset.errors
    assert dataset.stats["images"] == {"train": 6, "val": 2}


def test_previews_and_the_manifest_are_stored_and_listed(user, ingested, media_root, settings):
    settings.DATASET_PREVIEWS_PER_SPLIT = 4
    dataset = ingested(user, datagen.detection_zip(train=10, val=3))

    previews = dataset.files.exclude(preview="")
    assert sorted(previews.values_list("split", flat=True)) == ["train"] * 4 + ["val"] * 3
    for record in previews:
        assert (media_root / record.preview).read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    assert (media_root / dataset.manifest).is_file()
    manifest = json.loads(gzip.decompress((media_root / dataset.manifest).read_bytes()))
    assert manifest["classes"] == ["square", "disc"]
    assert len([pair for pair in manifest["files"] if pair[1].startswith("images/")]) == 13


def test_every_class_shows_up_in_the_previews_before_any_shows_twice(user, ingested, settings):
    settings.DATASET_PREVIEWS_PER_SPLIT = 2
    dataset = ingested(user, datagen.detection_zip(train=12, val=4))

    for split in ("train", "val"):
        shown = set()
        for record in dataset.files.filter(split=split).exclude(preview=""):
            shown |= set(record.class_indexes)
        assert shown == {0, 1}


def test_progress_is_stored_and_broadcast_per_stage(
    user, upload_zip, media_root, settings, django_capture_on_commit_callbacks
):
    settings.DATASET_PROGRESS_INTERVAL_SECONDS = 0
    dataset_id = upload_zip(user, datagen.detection_zip(train=8, val=2)).json()["id"]
    sent = []

    with (
        mock.patch("datasets.events.dataset_event_broadcast", side_effect=lambda **kw: sent.append(kw)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.dataset_ingest(dataset_id=dataset_id)

    stages = [m["payload"]["stage"] for m in sent if m["kind"] == "progress"]
    assert stages[0] == "extracting"
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [
        "extracting",
        "validating",
        "previews",
        "storing",
    ]
    percents = [m["payload"]["progress"] for m in sent if m["kind"] == "progress"]
    assert percents == sorted(percents) and percents[-1] == 95.0
    assert sent[-1]["kind"] == "ready" and sent[-1]["payload"]["num_images"] == 10
    assert all(m["dataset_id"] == dataset_id for m in sent)
    dataset = Dataset.objects.get(pk=dataset_id)
    assert (dataset.stage, dataset.progress, dataset.ingest_attempt) == ("done", 100.0, 1)


def test_progress_writes_are_rate_limited(user, upload_zip, media_root, settings, django_capture_on_commit_callbacks):
    settings.DATASET_PROGRESS_INTERVAL_SECONDS = 3600
    dataset_id = upload_zip(user, datagen.detection_zip(train=30, val=5)).json()["id"]
    sent = []

    with (
        mock.patch("datasets.events.dataset_event_broadcast", side_effect=lambda **kw: sent.append(kw)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.dataset_ingest(dataset_id=dataset_id)

    assert [m["payload"]["stage"] for m in sent if m["kind"] == "progress"] == [
        "extracting",
        "validating",
        "previews",
        "storing",
    ]


def test_an_attempt_superseded_midway_stops_and_removes_what_it_stored(user, upload_zip, media_root, settings):
    settings.DATASET_PROGRESS_INTERVAL_SECONDS = 0
    dataset_id = upload_zip(user, datagen.detection_zip(train=4, val=2)).json()["id"]
    archive = Dataset.objects.get(pk=dataset_id).archive.name
    real = services.ingest.manifest_store

    def take_over(*args, **kwargs):  # the reaper hands the data set to a new attempt meanwhile
        Dataset.objects.filter(pk=dataset_id).update(ingest_attempt=5)
        return real(*args, **kwargs)

    with mock.patch("datasets.services.ingest.manifest_store", side_effect=take_over):
        dataset = services.dataset_ingest(dataset_id=dataset_id)

    assert dataset.status == DatasetStatus.VALIDATING  # left to the attempt that owns it
    assert [p.relative_to(media_root).as_posix() for p in files_under(media_root)] == [archive]
    assert not dataset.files.exists()


def test_a_data_set_that_is_not_validating_is_not_ingested_again(user, ingested):
    dataset = ingested(user, datagen.detection_zip(train=2, val=1))

    again = services.dataset_ingest(dataset_id=dataset.pk)

    assert (again.ingest_attempt, again.validated_at) == (1, dataset.validated_at)


def test_the_reaper_requeues_a_stalled_ingest_then_fails_it(
    user, upload_zip, media_root, settings, django_capture_on_commit_callbacks
):
    settings.DATASET_INGEST_STALE_SECONDS = 60
    settings.DATASET_INGEST_MAX_ATTEMPTS = 2
    dataset_id = upload_zip(user, datagen.detection_zip(train=2, val=1)).json()["id"]
    later = timezone.now() + timedelta(minutes=5)
    Dataset.objects.filter(pk=dataset_id).update(ingest_attempt=1, heartbeat_at=timezone.now())

    with mock.patch("datasets.tasks.dataset_ingest_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            assert services.dataset_ingests_reap(now=later) == (1, 0)
            assert services.dataset_ingests_reap(now=later) == (0, 0)  # just touched: not stale
        delay.assert_called_once_with(dataset_id)

    Dataset.objects.filter(pk=dataset_id).update(ingest_attempt=2)
    dataset = Dataset.objects.get(pk=dataset_id)
    left = default_storage.save(f"{dataset_storage_prefix(dataset)}previews/train/00000.jpg", ContentFile(b"x"))
    assert (media_root / left).is_file()  # what the attempt that died had stored
    with django_capture_on_commit_callbacks(execute=True):
        assert services.dataset_ingests_reap(now=later + timedelta(minutes=5)) == (0, 1)
    dataset = Dataset.objects.get(pk=dataset_id)
    assert dataset.status == DatasetStatus.INVALID
    assert dataset.errors[0]["reason"].startswith("ingest stopped 2 times without finishing")
    assert files_under(media_root) == []


def test_auto_train_starts_a_job_with_the_default_configuration(user, ingested, settings):
    from jobs.api.serializers import TrainingConfigSerializer

    settings.DATASET_AUTO_TRAIN = False
    with mock.patch("jobs.services._enqueue_run"):
        dataset = ingested(user, datagen.detection_zip(train=3, val=1), auto_train="true")

    job = dataset.jobs.get()
    defaults = TrainingConfigSerializer(data={"dataset": dataset.pk})
    defaults.is_valid(raise_exception=True)
    assert job.owner == user and job.kind == "train"
    assert job.config["epochs"] == defaults.validated_data["epochs"]
    assert job.config["model"] == defaults.validated_data["model"]
    assert dataset.stats["auto_train_job"] == job.pk


def test_auto_train_follows_the_setting_when_the_upload_does_not_say(user, ingested, settings):
    settings.DATASET_AUTO_TRAIN = True
    with mock.patch("jobs.services._enqueue_run"):
        on = ingested(user, datagen.detection_zip(train=3, val=1, seed=1), name="on")
        off = ingested(user, datagen.detection_zip(train=3, val=1, seed=2), name="off", auto_train="false")

    assert on.auto_train and on.jobs.count() == 1
    assert not off.auto_train and off.jobs.count() == 0


def test_auto_train_is_off_by_default_and_never_for_an_invalid_set(user, ingested):
    ready = ingested(user, datagen.detection_zip(train=3, val=1))
    invalid = ingested(user, datagen.detection_zip(train=0, val=1), name="empty", auto_train="true")

    assert ready.jobs.count() == 0
    assert invalid.status == DatasetStatus.INVALID and invalid.jobs.count() == 0


def test_a_refused_auto_train_becomes_a_warning(user, ingested):
    with mock.patch("jobs.services.training_job_create", side_effect=IngestSuperseded("no GPU queue")):
        dataset = ingested(user, datagen.detection_zip(train=3, val=1), auto_train="true")

    assert dataset.status == DatasetStatus.READY
    assert {"file": None, "line": None, "reason": "auto-train did not start: no GPU queue"} in dataset.warnings


def test_a_label_with_a_byte_order_mark_is_accepted_and_written_without_it(user, ingested, other_node):
    data = datagen.detection_zip(train=2, val=1, extra={"images/train/bom.jpg": jpeg()})
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("labels/train/bom.txt", "\ufeff0 0.5 0.5 0.2 0.2\n".encode())
    dataset = ingested(user, buffer.getvalue())

    assert dataset.status == DatasetStatus.READY, dataset.errors
    other_node()
    assert (dataset_local_copy(dataset) / "labels/train/bom.txt").read_bytes() == b"0 0.5 0.5 0.2 0.2\n"


def test_an_archive_changed_in_storage_after_upload_is_refused(user, upload_zip, media_root, settings):
    dataset_id = upload_zip(user, datagen.detection_zip(train=2, val=1)).json()["id"]
    stored = media_root / Dataset.objects.get(pk=dataset_id).archive.name
    stored.write_bytes(datagen.detection_zip(train=2, val=1, seed=3))

    dataset = services.dataset_ingest(dataset_id=dataset_id)

    assert dataset.status == DatasetStatus.INVALID
    assert dataset.errors == [
        {"file": None, "line": None, "reason": f"the stored archive of data set {dataset_id} does not match its sha256"}
    ]
    assert files_under(settings.CACHE_DIR) == []
