"""The data set API beyond upload: versions and re-uploads, list filters, statistics, the file list,
the gallery and its thumbnails, download, delete, and uploads that stream to disk."""

import hashlib
import io
import os
import random
import tracemalloc
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.test import Client

from datasets import services
from datasets.cache import dataset_local_copy
from datasets.choices import DatasetStatus
from datasets.models import Dataset, DatasetFile
from tests import datagen
from tests.datasets.conftest import URL, files_under
from tests.factories import DatasetFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


# --- versions and identical uploads


def test_the_same_content_again_is_recognised_and_stores_nothing(user, upload_zip, media_root):
    data = datagen.detection_zip(train=3, val=1)
    first = upload_zip(user, data)
    stored = files_under(media_root)

    again = upload_zip(user, data, name="another name")

    assert first.status_code == 201 and first.json()["duplicate"] is False
    assert again.status_code == 200, again.content
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["duplicate"] is True
    assert again.json()["name"] == "shapes"
    assert Dataset.objects.count() == 1
    assert files_under(media_root) == stored


def test_the_same_content_with_other_options_or_owner_is_a_new_data_set(user, other_user, upload_zip, media_root):
    data = datagen.flat_detection_zip(count=10)

    first = upload_zip(user, data)
    resplit = upload_zip(user, data, val_ratio=0.3)
    theirs = upload_zip(other_user, data)

    assert [r.status_code for r in (first, resplit, theirs)] == [201, 201, 201]
    assert len({r.json()["id"] for r in (first, resplit, theirs)}) == 3
    assert first.json()["content_sha256"] == theirs.json()["content_sha256"] == hashlib.sha256(data).hexdigest()


def test_an_invalid_upload_is_not_a_duplicate_target(user, upload_zip, media_root):
    data = datagen.detection_zip(train=0, val=1)
    first = upload_zip(user, data)
    services.dataset_ingest(dataset_id=first.json()["id"])

    again = upload_zip(user, data)

    assert again.status_code == 201
    assert again.json()["version"] == 2


def test_a_new_upload_under_a_used_name_is_the_next_version(user, other_user, upload_zip, media_root):
    versions = [upload_zip(user, datagen.detection_zip(train=2, val=1, seed=s)).json()["version"] for s in range(3)]
    other = upload_zip(user, datagen.detection_zip(train=2, val=1, seed=9), name="other").json()["version"]
    theirs = upload_zip(other_user, datagen.detection_zip(train=2, val=1, seed=10)).json()["version"]

    assert versions == [1, 2, 3]
    assert (other, theirs) == (1, 1)


def test_a_version_race_retries_with_the_next_number(user, upload, media_root):
    DatasetFactory(owner=user, name="shapes", version=1)
    real_aggregate = Dataset.objects.filter(owner=user).aggregate
    calls = []

    def stale_then_real(*args, **kwargs):  # the first read misses a concurrent insert of version 1
        calls.append(1)
        return {"v": 0} if len(calls) == 1 else real_aggregate(*args, **kwargs)

    with mock.patch("django.db.models.query.QuerySet.aggregate", side_effect=stale_then_real):
        dataset, created = services.dataset_create(
            owner=user, name="shapes", file=upload(datagen.detection_zip(train=2, val=1))
        )

    assert created and dataset.version == 2
    assert len(calls) == 2


# --- list, filters, search


def test_list_filters_by_status_task_and_name_and_searches_names(user, other_user, api):
    DatasetFactory(owner=user, name="cats", task="classify")
    DatasetFactory(owner=user, name="cats", version=2, status=DatasetStatus.INVALID, task="classify")
    DatasetFactory(owner=user, name="roads", task="segment")
    DatasetFactory(owner=other_user, name="cats and dogs", task="classify")

    def names(query):
        response = api(user).get(f"{URL}?{query}")
        assert response.status_code == 200, response.content
        return sorted((row["name"], row["version"]) for row in response.json()["results"])

    assert names("task=classify") == [("cats", 1), ("cats", 2)]
    assert names("status=invalid") == [("cats", 2)]
    assert names("name=cats") == [("cats", 1), ("cats", 2)]
    assert names("search=oad") == [("roads", 1)]
    assert names("ordering=name") == [("cats", 1), ("cats", 2), ("roads", 1)]
    assert api(user).get(f"{URL}?task=video").status_code == 400
    row = api(user).get(URL).json()["results"][0]
    assert "errors" not in row and {"errors_count", "warnings_count", "stage", "progress"} <= set(row)


# --- statistics, files, gallery, thumbnails


@pytest.fixture
def shapes(user, ingested, settings):
    settings.DATASET_PREVIEWS_PER_SPLIT = 6
    data = datagen.detection_zip(train=12, val=4, extra={"images/train/page.jpg": b"<html/>", "notes.txt": "hi"})
    return ingested(user, data)


def test_statistics(user, api, shapes):
    body = api(user).get(f"{URL}{shapes.pk}/statistics/").json()

    assert body["task"] == "detect" and body["format"] == "yolo" and body["num_images"] == 16
    assert body["classes"] == [
        {"id": 0, "name": "square", "colour": "#042aff"},
        {"id": 1, "name": "disc", "colour": "#0bdbeb"},
    ]
    assert body["images"] == {"train": 12, "val": 4}
    assert set(body["instances"]["train"]) == {"square", "disc"}
    assert body["image_size"] == {"min": [64, 64], "max": [64, 64], "mean": [64.0, 64.0]}
    assert body["excluded_count"] == 1
    assert body["split"] == {"auto": False, "val_ratio": 0.2, "seed": 0}


def test_the_file_list_shows_every_file_with_its_problems_and_filters(user, api, shapes):
    url = f"{URL}{shapes.pk}/files/"

    everything = api(user).get(url).json()
    problems = api(user).get(f"{url}?problems=true").json()
    val_labels = api(user).get(f"{url}?split=val&role=label").json()
    page = api(user).get(f"{url}?page_size=5&page=2").json()

    assert everything["count"] == 1 + 13 + 12 + 4 + 4 + 1  # data.yaml, train images, labels, val, notes
    [bad] = problems["results"]
    assert bad["path"] == "images/train/page.jpg" and bad["status"] == "excluded"
    assert bad["problems"][0]["reason"].startswith("not a readable JPEG/PNG/BMP/WEBP image")
    assert bad["problems"][0]["severity"] == "error"
    assert val_labels["count"] == 4 and {r["status"] for r in val_labels["results"]} == {"ok"}
    assert len(page["results"]) == 5 and page["previous"] and page["next"]
    assert api(user).get(f"{url}?search=notes").json()["results"][0]["status"] == "ignored"
    assert api(user).get(f"{url}?split=test").status_code == 400


def test_the_gallery_per_split_and_class(user, api, shapes):
    url = f"{URL}{shapes.pk}/gallery/"

    train = api(user).get(f"{url}?split=train").json()
    val = api(user).get(f"{url}?split=val").json()
    squares = api(user).get(f"{url}?split=train&class=square").json()
    nothing = api(user).get(f"{url}?class=unicorn").json()

    assert train["count"] == 6 and val["count"] == 4
    assert squares["count"] >= 1 and all("square" in item["classes"] for item in squares["results"])
    assert nothing["count"] == 0
    item = train["results"][0]
    assert item["thumbnail_url"] == f"http://testserver{URL}{shapes.pk}/files/{item['id']}/thumbnail/"
    response = api(user).get(item["thumbnail_url"])
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"


def test_a_thumbnail_is_drawn_with_the_class_colours(user, api, shapes):
    from PIL import Image

    item = api(user).get(f"{URL}{shapes.pk}/gallery/?split=train&class=square").json()["results"][0]
    image = Image.open(io.BytesIO(api(user).get(item["thumbnail_url"]).content)).convert("RGB")
    square_outline = (0x04, 0x2A, 0xFF)

    def close(pixel, colour):
        return all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True))

    assert any(close(image.getpixel((x, y)), square_outline) for x in range(image.width) for y in range(image.height))


def test_another_user_gets_404_for_every_view_of_a_data_set(user, other_user, api, shapes):
    record = shapes.files.exclude(preview="").first()
    for path in ("", "statistics/", "files/", "gallery/", "download/", f"files/{record.pk}/thumbnail/"):
        assert api(other_user).get(f"{URL}{shapes.pk}/{path}").status_code == 404, path
    assert api(None).get(f"{URL}{shapes.pk}/gallery/").status_code in {401, 403}


def test_download_returns_the_original_bytes(user, api, upload_zip, media_root):
    data = datagen.detection_zip(train=2, val=1)
    dataset_id = upload_zip(user, data).json()["id"]

    response = api(user).get(f"{URL}{dataset_id}/download/")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Disposition"] == 'attachment; filename="shapes-v1.zip"'


# --- delete


def test_delete_removes_the_row_files_previews_manifest_and_cache(
    user, api, shapes, media_root, settings, django_capture_on_commit_callbacks
):
    assert len(files_under(media_root)) > 3
    dataset_local_copy(shapes)  # a job on this node cached the layout
    assert files_under(settings.CACHE_DIR)

    with django_capture_on_commit_callbacks(execute=True):
        response = api(user).delete(f"{URL}{shapes.pk}/")

    assert response.status_code == 204
    assert not Dataset.objects.exists() and not DatasetFile.objects.exists()
    assert files_under(media_root) == []
    assert files_under(settings.CACHE_DIR) == []


def test_delete_keeps_a_cache_entry_another_data_set_shares(
    user, other_user, ingested, api, settings, django_capture_on_commit_callbacks
):
    data = datagen.detection_zip(train=3, val=1)
    mine, theirs = ingested(user, data), ingested(other_user, data)
    assert mine.layout_sha256 == theirs.layout_sha256
    dataset_local_copy(mine)

    with django_capture_on_commit_callbacks(execute=True):
        assert api(user).delete(f"{URL}{mine.pk}/").status_code == 204

    assert (settings.CACHE_DIR / "datasets" / theirs.layout_sha256 / "data.yaml").is_file()


def test_delete_is_refused_while_a_model_version_uses_the_data_set(user, api, media_root):
    version = ModelVersionFactory(registered_model__owner=user)

    response = api(user).delete(f"{URL}{version.dataset.pk}/")

    assert response.status_code == 409
    assert "is used by 1 model version and cannot be deleted" in response.json()["error"]["message"]
    assert Dataset.objects.filter(pk=version.dataset.pk).exists()


# --- uploads stream to disk


def noisy_zip(size):
    """A valid data set padded with an incompressible file to about `size` bytes."""
    return datagen.detection_zip(train=2, val=1, extra={"padding.bin": random.Random(0).randbytes(size)})


def test_a_large_upload_streams_to_a_temporary_file_and_is_hashed_in_chunks(user, media_root):
    assert django_settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 2.5 * 1024**2
    data = noisy_zip(24 * 1024**2)
    seen = {}
    real_create = services.dataset_create

    def measured(**kwargs):
        seen["file"] = type(kwargs["file"])
        seen["sha256"] = kwargs["content_sha256"]
        tracemalloc.start()
        try:
            return real_create(**kwargs)
        finally:
            seen["peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

    client = Client()
    client.force_login(user)
    with mock.patch("datasets.services.dataset_create", side_effect=measured):
        response = client.post(URL, {"name": "big", "file": io.BytesIO(data)})

    assert response.status_code == 201, response.content
    assert seen["file"] is TemporaryUploadedFile
    assert seen["sha256"] == hashlib.sha256(data).hexdigest()  # hashed while it streamed in
    assert seen["peak"] < 8 * 1024**2  # the 24 MiB upload is never held in memory
    assert (media_root / Dataset.objects.get().archive.name).read_bytes() == data


def test_an_upload_declaring_more_than_the_limit_is_refused_before_reading_it(user, api, media_root, settings):
    settings.DATASET_MAX_UPLOAD_BYTES = 100_000
    client = Client()
    client.force_login(user)

    with mock.patch("django.http.multipartparser.MultiPartParser.parse") as parse:
        response = client.post(URL, {"name": "big", "file": io.BytesIO(noisy_zip(300_000))})

    parse.assert_not_called()  # refused before the body was read, even with session authentication
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_large"
    assert not Dataset.objects.exists() and files_under(media_root) == []


def test_an_upload_growing_past_the_limit_is_stopped_while_it_streams(user, rf, media_root, settings):
    from datasets.api.uploads import DatasetUploadHandler
    from portal.errors import ApplicationError

    settings.DATASET_MAX_UPLOAD_BYTES = 1024**2
    request = rf.post(URL, {"name": "big", "file": io.BytesIO(noisy_zip(4 * 1024**2))})
    request.upload_handlers.insert(0, DatasetUploadHandler(request, 1024**2))
    temporary = request.upload_handlers[-1]

    with pytest.raises(ApplicationError, match="the limit is 1048576"):
        request.FILES  # noqa: B018 - parsing the body is the act under test

    assert temporary.file.closed
    assert not os.path.exists(temporary.file.temporary_file_path())  # closing removed it
