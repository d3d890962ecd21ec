from celery import shared_task

from datasets import services


@shared_task(name="datasets.tasks.dataset_ingest_task")
def dataset_ingest_task(dataset_id):
    services.dataset_ingest(dataset_id=dataset_id)


@shared_task(name="datasets.tasks.dataset_ingests_reap_task")
def dataset_ingests_reap_task():
    services.dataset_ingests_reap()
