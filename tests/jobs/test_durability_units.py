"""Durability pieces: checkpoints, resume, crash re-queue, pruning, the local cache, log shipping, data.yaml."""

import hashlib
from unittest import mock

import pytest
import yaml
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from datasets.choices import DatasetTask
from jobs import launcher, services
from jobs.choices import AttemptOutcome, CheckpointKind, EventKind, JobStatus
from jobs.models import Checkpoint
from jobs.services import broker_priority
from tests.factories import DatasetFactory, TrainingJobFactory
from tests.jobs.test_callbacks import callback, claim

pytestmark = pytest.mark.django_db


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def job(user):
    return TrainingJobFactory(owner=user, epochs=3)


@pytest.fixture
def running(job):
    fence, token = claim(job)
    return job, token, fence


@pytest.fixture
def enqueued():
    with mock.patch("jobs.tasks.job_run.apply_async") as apply_async:
        yield apply_async


# --- the checkpoint callback


def checkpoint_payload(fence, name, data, **extra):
    return {
        "type": "checkpoint",
        "fencing_token": fence,
        "kind": "last",
        "epoch": 2,
        "storage_name": name,
        "sha256": sha256(data),
        "size": len(data),
        **extra,
    }


def test_checkpoint_callback_records_the_checkpoint_and_an_event(running, media_root):
    job, token, fence = running
    data = b"checkpoint at epoch 2"
    name = default_storage.save(f"jobs/{job.pk}/checkpoints/last-e0002.pt", ContentFile(data))

    response = callback(job.pk, token, checkpoint_payload(fence, name, data))

    assert response.status_code == 200, response.content
    checkpoint = Checkpoint.objects.get(job=job)
    assert (checkpoint.attempt, checkpoint.epoch, checkpoint.kind) == (1, 2, CheckpointKind.LAST)
    assert (checkpoint.storage_name, checkpoint.sha256, checkpoint.size) == (name, sha256(data), len(data))
    event = job.events.get(pk=response.json()["event"])
    assert event.kind == EventKind.CHECKPOINT
    assert event.payload == {"epoch": 2, "kind": "last", "sha256": sha256(data), "size": len(data)}
    job.refresh_from_db()
    assert job.last_heartbeat_at is not None

    best = callback(job.pk, token, checkpoint_payload(fence, name, data, kind="best"))
    assert best.status_code == 200
    assert sorted(job.checkpoints.values_list("kind", flat=True)) == ["best", "last"]


@pytest.mark.parametrize(
    "case",
    ["other-job", "dataset-file", "missing", "traversal", "not-a-string", "kind", "short-sha", "no-sha"],
)
def test_checkpoint_callback_refuses_bad_fields(running, user, media_root, case):
    job, token, fence = running
    data = b"bytes"
    own = default_storage.save(f"jobs/{job.pk}/checkpoints/last-e0002.pt", ContentFile(data))
    other = TrainingJobFactory(owner=user)
    theirs = default_storage.save(f"jobs/{other.pk}/model/best.pt", ContentFile(b"another job's weights"))
    foreign = default_storage.save("datasets/1/u/archive.zip", ContentFile(data))
    payloads = {
        "other-job": checkpoint_payload(fence, theirs, data),
        "dataset-file": checkpoint_payload(fence, foreign, data),
        "missing": checkpoint_payload(fence, f"jobs/{job.pk}/checkpoints/nothing.pt", data),
        "traversal": checkpoint_payload(fence, f"jobs/{job.pk}/../{other.pk}/model/best.pt", data),
        "not-a-string": checkpoint_payload(fence, 42, data),
        "kind": checkpoint_payload(fence, own, data, kind="middle"),
        "short-sha": checkpoint_payload(fence, own, data, sha256="abc"),
        "no-sha": checkpoint_payload(fence, own, data, sha256=None),
    }

    response = callback(job.pk, token, payloads[case])

    assert response.status_code == 400, response.content
    assert not Checkpoint.objects.exists()
    assert not job.events.filter(kind=EventKind.CHECKPOINT).exists()


# --- resume


def test_started_with_resumed_from_epoch_rewinds_the_job(running, enqueued):
    job, token, fence = running
    for epoch in (1, 2):
        assert callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": epoch}).status_code == 200
    assert callback(job.pk, token, {"type": "crashed", "fencing_token": fence, "exit_code": -9}).status_code == 200
    fence, token = claim(job)
    assert fence == 2

    started = callback(
        job.pk, token, {"type": "started", "fencing_token": fence, "device": "cuda:0", "resumed_from_epoch": 1}
    )

    assert started.status_code == 200, started.content
    job.refresh_from_db()
    assert job.epoch == 1
    assert job.progress == 33.33
    attempt = job.attempts.get(number=2)
    assert (attempt.resumed_from_epoch, attempt.device) == (1, "cuda:0")
    assert job.attempts.get(number=1).resumed_from_epoch is None
    kinds = list(job.events.order_by("id").values_list("kind", flat=True))
    assert kinds[-2:] == [EventKind.STARTED, EventKind.RESUMED]
    assert job.events.last().payload == {"epoch": 1, "attempt": 2}
    assert job.events.get(pk=started.json()["event"]).payload["resumed_from_epoch"] == 1

    again = callback(job.pk, token, {"type": "epoch", "fencing_token": fence, "epoch": 2, "metrics": {"loss": 0.5}})

    assert again.status_code == 200, again.content
    job.refresh_from_db()
    assert (job.epoch, job.metrics) == (2, {"loss": 0.5})
    assert job.events.filter(kind=EventKind.EPOCH, payload__epoch=2).count() == 2


def test_resumed_from_beyond_the_configured_epochs_is_refused(running):
    job, token, fence = running

    response = callback(job.pk, token, {"type": "started", "fencing_token": fence, "resumed_from_epoch": 4})

    assert response.status_code == 400
    job.refresh_from_db()
    assert job.epoch == 0
    assert job.attempts.get().resumed_from_epoch is None


# --- crashes


def test_crashed_requeues_the_job(running, enqueued, django_capture_on_commit_callbacks):
    job, token, fence = running

    with django_capture_on_commit_callbacks(execute=True):
        response = callback(
            job.pk, token, {"type": "crashed", "fencing_token": fence, "exit_code": -9, "reason": "killed by SIGKILL"}
        )

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    assert job.lease_until is None
    assert job.callback_token_hash == ""
    attempt = job.attempts.get(number=1)
    assert (attempt.outcome, attempt.exit_code, attempt.detail) == (AttemptOutcome.REQUEUED, -9, "killed by SIGKILL")
    assert attempt.ended_at is not None
    event = job.events.last()
    assert event.kind == EventKind.REQUEUED
    assert event.payload == {"reason": "killed by SIGKILL", "attempt": 1}
    enqueued.assert_called_once_with(args=[job.pk], queue="gpu", priority=broker_priority(5))
    # The dead attempt's token is revoked; the next claim gets a new attempt.
    assert callback(job.pk, token, {"type": "log", "fencing_token": fence, "lines": ["x"]}).status_code == 403
    claimed, _ = services.job_claim(job_id=job.pk, worker="w2")
    assert (claimed.attempt, claimed.fencing_token) == (2, 2)


def test_crashed_without_attempts_left_fails_the_job(user, enqueued, django_capture_on_commit_callbacks):
    job = TrainingJobFactory(owner=user, max_attempts=1)
    fence, token = claim(job)

    with django_capture_on_commit_callbacks(execute=True):
        response = callback(
            job.pk, token, {"type": "crashed", "fencing_token": fence, "exit_code": 137, "reason": "out of memory"}
        )

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "out of memory; all 1 attempts used"
    assert job.finished_at is not None
    attempt = job.attempts.get()
    assert (attempt.outcome, attempt.exit_code) == (AttemptOutcome.FAILED, 137)
    assert job.events.last().kind == EventKind.FAILED
    enqueued.assert_not_called()


def test_crashed_while_cancelling_ends_cancelled(running, enqueued, django_capture_on_commit_callbacks):
    job, token, fence = running
    services.job_cancel(job=job)

    with django_capture_on_commit_callbacks(execute=True):
        response = callback(job.pk, token, {"type": "crashed", "fencing_token": fence, "exit_code": -15})

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.finished_at is not None
    assert job.attempts.get().outcome == AttemptOutcome.CANCELLED
    assert job.events.last().kind == EventKind.CANCELLED
    enqueued.assert_not_called()


# --- checkpoint_prune


def stored_checkpoint(job, kind, epoch):
    name = default_storage.save(f"jobs/{job.pk}/checkpoints/{kind}-e{epoch:04d}.pt", ContentFile(b"x" * epoch))
    return Checkpoint.objects.create(
        job=job, attempt=1, epoch=epoch, kind=kind, storage_name=name, sha256="0" * 64, size=epoch
    )


def test_checkpoint_prune_keeps_the_newest_lasts_and_the_newest_best(job, media_root):
    lasts = [stored_checkpoint(job, "last", epoch) for epoch in (1, 2, 3, 4)]
    bests = [stored_checkpoint(job, "best", epoch) for epoch in (1, 3)]
    other_job = TrainingJobFactory(owner=job.owner)
    untouched = stored_checkpoint(other_job, "last", 1)

    launcher.checkpoint_prune(job, keep_last=2)

    kept = {(c.kind, c.epoch) for c in job.checkpoints.all()}
    assert kept == {("last", 4), ("last", 3), ("best", 3)}
    for checkpoint in (lasts[2], lasts[3], bests[1], untouched):
        assert default_storage.exists(checkpoint.storage_name), checkpoint
    for checkpoint in (lasts[0], lasts[1], bests[0]):
        assert not default_storage.exists(checkpoint.storage_name), checkpoint
    assert Checkpoint.objects.filter(pk=untouched.pk).exists()


def test_checkpoint_prune_with_keep_last_zero_removes_everything(job, media_root):
    checkpoints = [stored_checkpoint(job, "last", 1), stored_checkpoint(job, "best", 1)]

    launcher.checkpoint_prune(job, keep_last=0)

    assert not job.checkpoints.exists()
    assert not any(default_storage.exists(c.storage_name) for c in checkpoints)


# --- stored_file_local_copy


def test_stored_file_local_copy_refuses_bytes_that_do_not_match(media_root, tmp_path):
    name = default_storage.save("jobs/1/model/best.pt", ContentFile(b"weights"))
    folder = tmp_path / "local-cache"

    assert launcher.stored_file_local_copy(name, sha256(b"other weights"), folder) is None
    assert list(folder.iterdir()) == []  # no partial file left behind


def test_stored_file_local_copy_caches_by_sha256(media_root, tmp_path):
    data = b"weights" * 1000
    name = default_storage.save("jobs/1/model/best.pt", ContentFile(data))
    folder = tmp_path / "local-cache"

    first = launcher.stored_file_local_copy(name, sha256(data), folder)

    assert first == folder / f"{sha256(data)}.pt"
    assert first.read_bytes() == data
    default_storage.delete(name)
    with mock.patch.object(default_storage, "open", side_effect=AssertionError("storage read again")):
        second = launcher.stored_file_local_copy(name, sha256(data), folder)
    assert second == first
    assert sorted(p.name for p in folder.iterdir()) == [first.name]


# --- LogShipper


def shipped_lines(tmp_path, data):
    path = tmp_path / "attempt-1.log"
    path.write_bytes(data)
    return launcher.LogShipper(path).lines()


def test_log_shipper_strips_ansi_codes(tmp_path):
    data = b"\x1b[32mgreen\x1b[0m text\n\x1b[?25l\x1b[1;31mERROR\x1b[0m: boom\n"

    assert shipped_lines(tmp_path, data) == ["green text", "ERROR: boom"]


def test_log_shipper_keeps_the_last_carriage_return_segment(tmp_path):
    data = b"  1/10  10%|#         | loss 2.0\r  5/10  50%|#####     | loss 1.5\r 10/10 100%|##########| loss 1.0\n"

    assert shipped_lines(tmp_path, data) == [" 10/10 100%|##########| loss 1.0"]


def test_log_shipper_drops_blank_lines(tmp_path):
    assert shipped_lines(tmp_path, b"one\n\n   \ntwo  \n") == ["one", "two"]


def test_log_shipper_buffers_a_partial_last_line(tmp_path):
    path = tmp_path / "attempt-1.log"
    path.write_bytes(b"first\nsecond ha")
    shipper = launcher.LogShipper(path)

    assert shipper.lines() == ["first"]
    assert shipper.lines() == []
    with open(path, "ab") as handle:
        handle.write(b"lf done\nthird")
    assert shipper.lines() == ["second half done"]
    with open(path, "ab") as handle:
        handle.write(b"\n")
    assert shipper.lines() == ["third"]


def test_log_shipper_keeps_multibyte_characters_split_between_reads(tmp_path):
    path = tmp_path / "attempt-1.log"
    bar = "━" * 30  # Ultralytics' progress bar character: three bytes in UTF-8
    line = f"  1/3 {bar} 100%"
    data = (line + "\n").encode() * 12000  # more than one 256 KiB read
    path.write_bytes(data)
    shipper = launcher.LogShipper(path)

    lines = []
    while batch := shipper.lines():
        lines.extend(batch)

    assert len(lines) == 12000
    assert set(lines) == {line}


def test_log_shipper_without_a_file_sends_nothing(tmp_path):
    shipper = launcher.LogShipper(tmp_path / "missing.log")
    send = mock.Mock()

    shipper.ship(send, force=True)

    assert shipper.lines() == []
    send.assert_not_called()


def test_log_shipper_sends_batches_of_at_most_200_lines(tmp_path):
    path = tmp_path / "attempt-1.log"
    path.write_text("".join(f"line {n}\n" for n in range(450)))
    shipper = launcher.LogShipper(path)
    send = mock.Mock()

    shipper.ship(send, force=True)

    payloads = [c.args[0] for c in send.call_args_list]
    assert [len(p["lines"]) for p in payloads] == [200, 200, 50]
    assert all(p["type"] == "log" for p in payloads)
    assert [line for p in payloads for line in p["lines"]] == [f"line {n}" for n in range(450)]
    shipper.ship(send, force=True)
    assert send.call_count == 3  # nothing new, nothing sent


def test_log_shipper_waits_between_batches_unless_forced(tmp_path):
    path = tmp_path / "attempt-1.log"
    path.write_text("hello\n")
    shipper = launcher.LogShipper(path)
    send = mock.Mock()
    with mock.patch.object(launcher.time, "monotonic", return_value=1000.0):
        shipper.ship(send)
        path.write_text("hello\nworld\n")
        shipper.ship(send)  # within LOG_SHIP_SECONDS: skipped, the line waits
    assert [c.args[0]["lines"] for c in send.call_args_list] == [["hello"]]

    shipper.ship(send, force=True)

    assert [c.args[0]["lines"] for c in send.call_args_list] == [["hello"], ["world"]]


# --- data_source


def test_data_source_writes_a_data_yaml_with_the_servers_paths(user, tmp_path):
    dataset = DatasetFactory(owner=user, classes=["cat", "dog: big", "path: /etc"])
    root = tmp_path / "cache" / "datasets" / "abc"
    work = tmp_path / "work"
    work.mkdir()

    source = launcher.data_source(root, work, dataset)

    assert source == work / "data.yaml"
    document = yaml.safe_load(source.read_text())
    assert document == {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "cat", 1: "dog: big", 2: "path: /etc"},
    }


def test_data_source_of_a_classify_dataset_is_the_folder(user, tmp_path):
    dataset = DatasetFactory(owner=user, task=DatasetTask.CLASSIFY, classes=["a", "b"])
    root = tmp_path / "cache" / "datasets" / "cls"
    work = tmp_path / "work"
    work.mkdir()

    assert launcher.data_source(root, work, dataset) == root
    assert not (work / "data.yaml").exists()
