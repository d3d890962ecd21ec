"""Ingest progress: stored on the row (the system of record) and broadcast to `dataset-<id>` after commit."""

import logging
import time

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from datasets.choices import DatasetStatus, IngestStage
from datasets.models import Dataset

logger = logging.getLogger(__name__)

# Where each stage sits on the progress bar (percent).
STAGE_SPANS = {
    IngestStage.QUEUED: (0.0, 0.0),
    IngestStage.EXTRACTING: (0.0, 30.0),
    IngestStage.VALIDATING: (30.0, 85.0),
    IngestStage.PREVIEWS: (85.0, 95.0),
    IngestStage.STORING: (95.0, 100.0),
    IngestStage.DONE: (100.0, 100.0),
}


class IngestSuperseded(Exception):
    """Another ingest attempt owns the data set now (or it was reaped); this one must stop."""


def dataset_group(dataset_id):
    return f"dataset-{dataset_id}"


def dataset_event_broadcast(*, dataset_id, kind, payload):
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "event", "kind": kind, "payload": payload}
    try:
        async_to_sync(layer.group_send)(dataset_group(dataset_id), {"type": "dataset.event", "message": message})
    except Exception:  # the row already holds the state; a browser resyncs from it
        logger.warning("could not broadcast %s of data set %s", kind, dataset_id, exc_info=True)


def dataset_event_on_commit(*, dataset_id, kind, payload):
    transaction.on_commit(lambda: dataset_event_broadcast(dataset_id=dataset_id, kind=kind, payload=payload))


class IngestProgress:
    """Writes the stage and percent of one ingest attempt, at most once per `interval` seconds within a stage."""

    def __init__(self, *, dataset_id, attempt, interval):
        self.dataset_id = dataset_id
        self.attempt = attempt
        self.interval = interval
        self.stage_name = IngestStage.QUEUED
        self.last_write = 0.0
        self.last_percent = -1.0

    def stage(self, stage):
        self.stage_name = stage
        self._write(STAGE_SPANS[stage][0])

    def update(self, fraction):
        """Progress within the current stage, 0..1 (rate-limited)."""
        if time.monotonic() - self.last_write < self.interval:
            return
        start, end = STAGE_SPANS[self.stage_name]
        percent = round(start + (end - start) * min(max(fraction, 0.0), 1.0), 1)
        if percent != self.last_percent:
            self._write(percent)

    def bytes_update(self, done, total):
        self.update(done / total if total else 1.0)

    def _write(self, percent):
        self.last_write = time.monotonic()
        self.last_percent = percent
        updated = Dataset.objects.filter(
            pk=self.dataset_id, status=DatasetStatus.VALIDATING, ingest_attempt=self.attempt
        ).update(stage=self.stage_name, progress=percent, heartbeat_at=timezone.now())
        if not updated:
            raise IngestSuperseded(f"data set {self.dataset_id}: ingest attempt {self.attempt} was superseded")
        dataset_event_on_commit(
            dataset_id=self.dataset_id, kind="progress", payload={"stage": self.stage_name, "progress": percent}
        )
