"""The dashboard pages: a user's list with the upload form, and a data set's report, statistics and gallery."""

import pytest

from datasets.choices import DatasetStatus
from tests import datagen

pytestmark = [pytest.mark.django_db]


def test_the_list_shows_only_the_users_data_sets(browser, user, other_user, ingested):
    mine = ingested(user, datagen.detection_zip(train=2, val=1), name="mine")
    ingested(other_user, datagen.detection_zip(train=2, val=1, seed=4), name="theirs")

    page = browser.get("/datasets/").content.decode()

    assert f'href="/datasets/{mine.pk}/"' in page and "mine" in page
    assert "theirs" not in page
    assert 'id="upload"' in page


def test_the_detail_page_shows_the_report_classes_and_the_gallery_hooks(browser, user, ingested):
    data = datagen.detection_zip(train=10, val=2, extra={"images/train/page.jpg": b"<html/>"})
    dataset = ingested(user, data)
    assert dataset.status == DatasetStatus.READY

    page = browser.get(f"/datasets/{dataset.pk}/").content.decode()

    assert "not a readable JPEG/PNG/BMP/WEBP image" in page and "images/train/page.jpg" in page
    assert 'background: #042aff"></span>square' in page
    assert f"const datasetId = {dataset.pk};" in page and "/api/v1/datasets/${datasetId}/gallery/?" in page
    assert f"/api/v1/datasets/{dataset.pk}/download/" in page
    assert '"images_per_class"' in page  # the statistics the class table is filled from


def test_the_pages_are_scoped_and_need_a_login(browser, other_user, ingested, client):
    theirs = ingested(other_user, datagen.detection_zip(train=2, val=1))

    assert browser.get(f"/datasets/{theirs.pk}/").status_code == 404
    assert client.get("/datasets/").status_code == 302
