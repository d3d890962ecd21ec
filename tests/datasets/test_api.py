"""The data set API: upload (checked before anything is stored), ingest, scoping, delete."""

import hashlib
import io
import stat
import zipfile
from unittest import mock

import pytest
import yaml

from datasets import services
from datasets.cache import dataset_local_copy
from datasets.choices import DatasetStatus
from datasets.formats.names import MISSING_NAMES
from datasets.models import Dataset
from tests import datagen
from tests.factories import DatasetFactory, TrainingJobFactory

URL = "/api/v1/datasets/"

pytestmark = pytest.mark.django_db


def stored_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_upload_creates_a_validating_dataset_and_enqueues_ingest_on_commit(
    user, api, upload, dataset_zip, media_root, django_capture_on_commit_callbacks
):
    with mock.patch("datasets.tasks.dataset_ingest_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = api(user).post(URL, {"name": " shapes ", "file": upload(dataset_zip)}, format="multipart")
        assert response.status_code == 201, response.content
        delay.assert_not_called()  # not before the row is committed
        assert len(callbacks) == 1
        callbacks[0]()

    body = response.json()
    assert body["status"] == "validating"
    assert body["name"] == "shapes"
    assert body["archive_size"] == len(dataset_zip)
    assert body["content_sha256"] == hashlib.sha256(dataset_zip).hexdigest()
    delay.assert_called_once_with(body["id"])
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.owner == user
    assert (media_root / dataset.archive.name).read_bytes() == dataset_zip
    assert dataset.archive.name == f"datasets/{user.pk}/{dataset.upload_uuid}/archive.zip"


def symlink_member_zip():
    buffer = io.BytesIO(datagen.detection_zip(train=1, val=1))
    with zipfile.ZipFile(buffer, "a") as archive:
        info = zipfile.ZipInfo("images/train/evil.jpg")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: datagen.detection_zip(train=1, val=1, extra={"../../evil.txt": b"x"}), "'..' path components"),
        (lambda: datagen.detection_zip(train=1, val=1, extra={"/etc/cron.d/evil": b"x"}), "absolute paths"),
        (symlink_member_zip, "symbolic links"),
        (lambda: datagen.detection_zip(train=1, val=1, extra={"zeros.bin": bytes(5 * 1024**2)}), "compression ratio"),
        (lambda: datagen.detection_zip(train=1, val=1, extra={"inner.zip": b"PK"}), "nested archives"),
        (lambda: b"definitely not a zip", "not a valid zip archive"),
    ],
    ids=["zip-slip", "absolute", "symlink", "ratio-bomb", "nested", "not-a-zip"],
)
def test_hostile_upload_is_refused_and_leaves_nothing_behind(
    user, api, upload, media_root, settings, django_capture_on_commit_callbacks, build, fragment
):
    with (
        mock.patch("datasets.tasks.dataset_ingest_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        response = api(user).post(URL, {"name": "evil", "file": upload(build())}, format="multipart")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "archive_rejected"
    assert fragment in error["message"]
    assert fragment in error["fields"]["file"][0]
    assert not Dataset.objects.exists()
    assert stored_files(media_root) == []
    assert str(settings.MEDIA_ROOT) == str(media_root)
    assert callbacks == []
    delay.assert_not_called()


def test_upload_without_a_name_is_refused(user, api, upload, dataset_zip, media_root):
    response = api(user).post(URL, {"file": upload(dataset_zip)}, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "name" in response.json()["error"]["fields"]
    assert not Dataset.objects.exists()
    assert stored_files(media_root) == []


def test_upload_over_the_size_limit_is_refused(user, api, upload, dataset_zip, media_root, settings):
    settings.DATASET_MAX_UPLOAD_BYTES = len(dataset_zip) - 1

    response = api(user).post(URL, {"name": "big", "file": upload(dataset_zip)}, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_large"
    assert not Dataset.objects.exists()
    assert stored_files(media_root) == []


def test_ingest_extracts_validates_and_marks_the_dataset_ready(user, api, upload, dataset_zip, media_root):
    response = api(user).post(URL, {"name": "shapes", "file": upload(dataset_zip)}, format="multipart")
    dataset_id = response.json()["id"]

    dataset = services.dataset_ingest(dataset_id=dataset_id)

    assert dataset.status == DatasetStatus.READY
    assert dataset.classes == ["square", "disc"]
    assert dataset.num_images == 9
    assert dataset.errors == []
    assert dataset.validated_at is not None
    assert dataset.stats["images"] == {"train": 6, "val": 3}
    assert dataset.stats["excluded"] == []
    body = api(user).get(f"{URL}{dataset_id}/").json()
    assert body["status"] == "ready"
    assert body["classes"] == ["square", "disc"]
    # Ingest leaves nothing in the node-local cache; the first job builds the Ultralytics-ready copy
    # there, under the layout hash, with the server's data.yaml.
    cache = media_root.parent / "cache"
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    cached = cache / "datasets" / dataset.layout_sha256
    assert dataset_local_copy(dataset) == cached
    assert yaml.safe_load((cached / "data.yaml").read_text()) == {
        "path": str(cached),
        "train": "images/train",
        "val": "images/val",
        "names": {0: "square", 1: "disc"},
    }
    assert len(list((cached / "images" / "train").iterdir())) == 6
    assert len(list((cached / "labels" / "val").iterdir())) == 3
    assert dataset_local_copy(dataset) == cached


def test_ingest_runs_once(user, api, upload, dataset_zip, media_root):
    dataset_id = api(user).post(URL, {"name": "shapes", "file": upload(dataset_zip)}, format="multipart").json()["id"]
    first = services.dataset_ingest(dataset_id=dataset_id)

    second = services.dataset_ingest(dataset_id=dataset_id)

    assert second.status == DatasetStatus.READY
    assert second.validated_at == first.validated_at


def test_ingest_of_an_invalid_dataset_reports_the_problems(user, api, upload, media_root):
    data = datagen.detection_zip(train=2, val=1, extra={"labels/train/ghost.txt": "0 0.5 0.5 0.1 0.1\n"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            if info.filename != "data.yaml":
                target.writestr(info, source.read(info))
    dataset_id = (
        api(user).post(URL, {"name": "broken", "file": upload(buffer.getvalue())}, format="multipart").json()["id"]
    )

    dataset = services.dataset_ingest(dataset_id=dataset_id)

    assert dataset.status == DatasetStatus.INVALID
    assert {"file": "data.yaml", "line": None, "reason": MISSING_NAMES} in dataset.errors
    assert {"file": "labels/train/ghost.txt", "line": None, "reason": "label file has no matching image"} in (
        dataset.errors
    )


def test_ingest_of_a_damaged_archive_marks_the_dataset_invalid(user, api, upload, media_root):
    """The central directory is intact (the upload is accepted) but a member's deflate data is not."""
    data = datagen.detection_zip(train=2, val=1)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("images/train/img001.jpg")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = data[:start] + b"\x07" + data[start + 1 :]  # a deflate block of the reserved type 3
    response = api(user).post(URL, {"name": "damaged", "file": upload(damaged)}, format="multipart")
    assert response.status_code == 201

    dataset = services.dataset_ingest(dataset_id=response.json()["id"])

    dataset.refresh_from_db()
    assert dataset.status == DatasetStatus.INVALID
    assert "damaged or truncated" in dataset.errors[0]["reason"]


def test_another_user_cannot_see_the_dataset(user, other_user, api, media_root):
    dataset = DatasetFactory(owner=user)

    detail = api(other_user).get(f"{URL}{dataset.pk}/")
    listing = api(other_user).get(URL)

    assert detail.status_code == 404
    assert detail.json()["error"]["code"] == "not_found"
    assert listing.status_code == 200
    assert listing.json()["count"] == 0
    assert listing.json()["results"] == []
    assert api(user).get(f"{URL}{dataset.pk}/").status_code == 200


def test_another_user_cannot_delete_the_dataset(user, other_user, api, media_root):
    dataset = DatasetFactory(owner=user)

    response = api(other_user).delete(f"{URL}{dataset.pk}/")

    assert response.status_code == 404
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_delete_is_refused_while_a_training_job_uses_the_dataset(user, api, media_root):
    dataset = DatasetFactory(owner=user)
    TrainingJobFactory(owner=user, dataset=dataset)

    response = api(user).delete(f"{URL}{dataset.pk}/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert "is used by 1 training job and cannot be deleted" in response.json()["error"]["message"]
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert (media_root / dataset.archive.name).is_file()


def test_delete_removes_the_row_and_then_the_archive(user, api, media_root, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(owner=user)
    archive = media_root / dataset.archive.name
    assert archive.is_file()

    with django_capture_on_commit_callbacks(execute=True):
        response = api(user).delete(f"{URL}{dataset.pk}/")

    assert response.status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert not archive.exists()
