"""Data sets on S3 (production's storage), against moto's S3 server started in-process on a free port:
the archive, the layout manifest and the previews live in the bucket, and a worker on another node
builds its Ultralytics-ready copy from there."""

import socket

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from datasets.cache import dataset_local_copy
from datasets.choices import DatasetStatus
from tests import datagen
from tests.datasets.conftest import URL, files_under

pytestmark = pytest.mark.django_db

BUCKET = "portal-datasets"
KEYS = {"access_key": "testing", "secret_key": "testing"}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint, media_root, settings, tmp_path):
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=KEYS["access_key"],
        aws_secret_access_key=KEYS["secret_key"],
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "file_overwrite": False,
                "default_acl": None,
                "querystring_auth": True,
                **KEYS,
            },
        },
    }
    settings.MEDIA_ROOT = tmp_path / "unused-media"
    settings.CACHE_DIR = tmp_path / "ingest-node-cache"
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def keys(client):
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_a_data_set_lives_in_the_bucket_and_a_worker_elsewhere_builds_it_from_there(
    user, api, bucket, ingested, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.DATASET_PREVIEWS_PER_SPLIT = 3
    data = datagen.detection_zip(train=6, val=3, top_folder="shapes")

    dataset = ingested(user, data)

    assert dataset.status == DatasetStatus.READY, dataset.errors
    prefix = f"datasets/{user.pk}/{dataset.upload_uuid}/"
    stored = keys(bucket)
    assert f"{prefix}archive.zip" in stored
    assert f"{prefix}layout.json.gz" in stored
    assert len([k for k in stored if k.startswith(f"{prefix}previews/")]) == 6
    assert bucket.get_object(Bucket=BUCKET, Key=f"{prefix}archive.zip")["Body"].read() == data
    assert files_under(settings.MEDIA_ROOT) == []

    settings.CACHE_DIR = tmp_path / "worker-node-cache"  # another machine: only the bucket and the database
    root = dataset_local_copy(dataset)
    assert root.parent.parent == settings.CACHE_DIR
    assert len(list((root / "images" / "train").iterdir())) == 6
    assert len(list((root / "labels" / "val").iterdir())) == 3
    assert (root / "data.yaml").is_file()
    assert dataset_local_copy(dataset) == root  # the second job copies nothing

    item = api(user).get(f"{URL}{dataset.pk}/gallery/?split=val").json()["results"][0]
    thumbnail = api(user).get(item["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
    download = api(user).get(f"{URL}{dataset.pk}/download/")
    assert download.status_code == 302
    assert requests.get(download["Location"], timeout=10).content == data

    with django_capture_on_commit_callbacks(execute=True):
        assert api(user).delete(f"{URL}{dataset.pk}/").status_code == 204
    assert keys(bucket) == []


def test_a_tampered_archive_in_the_bucket_is_refused_by_the_worker(user, bucket, ingested, settings, tmp_path):
    from datasets.archive import ArchiveRejected

    dataset = ingested(user, datagen.detection_zip(train=2, val=1))
    bucket.put_object(Bucket=BUCKET, Key=dataset.archive.name, Body=datagen.detection_zip(train=2, val=1, seed=5))
    settings.CACHE_DIR = tmp_path / "worker-node-cache"

    with pytest.raises(ArchiveRejected, match="does not match its sha256"):
        dataset_local_copy(dataset)
    assert files_under(settings.CACHE_DIR) == []
