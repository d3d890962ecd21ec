"""The hostile-input corpus, through the API and the ingest service: a specific message for each,
and afterwards no file on disk (storage, cache) and no row in the database."""

import os
from unittest import mock

import pytest

from datasets import services
from datasets.choices import DatasetStatus
from datasets.models import Dataset, DatasetFile
from tests import datagen
from tests.datasets.conftest import URL, files_under
from tests.datasets.corpus import CORPUS, with_yaml

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")]


def test_the_corpus_is_large_and_every_case_is_named_once():
    assert len(CORPUS) >= 30
    assert len({case.id for case in CORPUS}) == len(CORPUS)
    assert sum(case.stage == "upload" for case in CORPUS) >= 25
    assert sum(case.stage == "ingest" for case in CORPUS) >= 15


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_hostile_input_gets_its_message_and_leaves_nothing_behind(
    case, user, api, upload_zip, media_root, settings, django_capture_on_commit_callbacks
):
    for key, value in case.settings.items():
        setattr(settings, key, value)
    data = case.build()

    with (
        mock.patch("datasets.tasks.dataset_ingest_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = upload_zip(user, data, name=case.id)

    if case.stage == "upload":
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert error["code"] == case.code
        assert case.fragment in error["message"], error["message"]
        assert error["fields"]["file"]
        delay.assert_not_called()
    else:
        assert response.status_code == 201, response.content
        dataset_id = response.json()["id"]
        delay.assert_called_once_with(dataset_id)
        with django_capture_on_commit_callbacks(execute=True):
            dataset = services.dataset_ingest(dataset_id=dataset_id)
        assert dataset.status == DatasetStatus.INVALID
        reasons = [problem["reason"] for problem in dataset.errors]
        assert any(case.fragment in reason for reason in reasons), reasons
        # An invalid data set keeps its report, not its archive, and nothing of it reaches the cache.
        assert files_under(media_root) == []
        assert files_under(settings.CACHE_DIR) == []
        assert api(user).get(f"{URL}{dataset_id}/download/").status_code == 404
        with django_capture_on_commit_callbacks(execute=True):
            assert api(user).delete(f"{URL}{dataset_id}/").status_code == 204
    assert not Dataset.objects.exists()
    assert not DatasetFile.objects.exists()
    assert files_under(media_root) == []
    assert files_under(settings.CACHE_DIR) == []


def test_a_download_key_is_reported_and_never_run(user, ingested, tmp_path):
    marker = tmp_path / "pwned"
    text = f"names: [square, disc]\ndownload: |\n  import pathlib; pathlib.Path('{marker}').touch()\n"

    dataset = ingested(user, with_yaml(text))

    assert dataset.status == DatasetStatus.READY
    assert {
        "file": "data.yaml",
        "line": 2,
        "reason": "'download' is ignored: the portal never fetches or runs anything named in a data set",
    } in dataset.warnings
    assert not marker.exists()


def test_a_path_outside_the_archive_is_reported_and_never_read(user, ingested, tmp_path, other_node):
    outside = tmp_path / "elsewhere"
    (outside / "images" / "train").mkdir(parents=True)
    (outside / "images" / "train" / "planted.jpg").write_bytes(datagen.sample_image_bytes())
    text = f"path: {outside}\ntrain: ../../../etc\nnames: [square, disc]\n"

    dataset = ingested(user, with_yaml(text))

    assert dataset.status == DatasetStatus.READY
    assert dataset.num_images == 4
    reasons = {(w["line"], w["reason"].split(" is ignored")[0]) for w in dataset.warnings if w["file"] == "data.yaml"}
    assert (1, f"'path: {outside}' points outside the archive and") in reasons
    assert (2, "'train: ../../../etc' points outside the archive and") in reasons
    other_node()
    from datasets.cache import dataset_local_copy

    root = dataset_local_copy(dataset)
    assert not any(p.name == "planted.jpg" for p in root.rglob("*"))
    assert os.path.realpath(root) != os.path.realpath(outside)
