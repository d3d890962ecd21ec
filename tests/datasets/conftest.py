import shutil

import pytest

from datasets import services
from datasets.models import Dataset

URL = "/api/v1/datasets/"


def files_under(root):
    """Every file below a folder (none when it does not exist)."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def upload_zip(api, upload):
    """POST a zip through the API as `owner`; returns the response."""

    def post(owner, data, name="shapes", **fields):
        return api(owner).post(URL, {"name": name, "file": upload(data), **fields}, format="multipart")

    return post


@pytest.fixture
def ingested(upload_zip, media_root):
    """Upload a zip through the API and run its ingest; returns the data set row."""

    def run(owner, data, name="shapes", **fields):
        response = upload_zip(owner, data, name=name, **fields)
        assert response.status_code == 201, response.content
        return services.dataset_ingest(dataset_id=response.json()["id"])

    return run


@pytest.fixture
def other_node(settings, tmp_path):
    """Switch to an empty node-local cache, as a worker on another machine has."""

    def switch():
        settings.CACHE_DIR = tmp_path / "other-node-cache"
        return settings.CACHE_DIR

    return switch


def fresh(dataset):
    return Dataset.objects.get(pk=dataset.pk)


def wipe(path):
    shutil.rmtree(path, ignore_errors=True)
