"""The data set settings: every one documented, uploads streamed to disk, the reaper scheduled."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_data_set_variable_is_documented_in_the_env_example():
    read = set(re.findall(r'env\.\w+\("(DATASET_\w+)"', (ROOT / "portal/settings/base.py").read_text()))
    documented = set(re.findall(r"^(DATASET_\w+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))

    assert read >= {"DATASET_MAX_ERROR_RATIO", "DATASET_AUTO_TRAIN", "DATASET_DEFAULT_VAL_RATIO"}
    assert read <= documented
    assert read <= set(re.findall(r"`(DATASET_\w+)`", (ROOT / "docs/datasets.md").read_text()))


def test_uploads_stream_to_disk_and_stalled_ingests_are_reaped():
    assert settings.FILE_UPLOAD_MAX_MEMORY_SIZE <= 2.5 * 1024**2
    assert "django.core.files.uploadhandler.TemporaryFileUploadHandler" in settings.FILE_UPLOAD_HANDLERS
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "datasets.tasks.dataset_ingests_reap_task" in schedule
    assert settings.DATASET_AUTO_TRAIN is False
