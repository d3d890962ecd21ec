"""Writes for data sets: upload, ingest, delete, and the reaper for stalled ingests."""

from datasets.services.ingest import dataset_ingest, dataset_ingests_reap
from datasets.services.upload import dataset_create, dataset_delete, dataset_options, dataset_stored_names

__all__ = [
    "dataset_create",
    "dataset_delete",
    "dataset_ingest",
    "dataset_ingests_reap",
    "dataset_options",
    "dataset_stored_names",
]
