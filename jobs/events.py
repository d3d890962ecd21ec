"""Recording job events and broadcasting them to the job's Channels group."""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from jobs.models import JobEvent

logger = logging.getLogger(__name__)


def job_event_record(*, job, kind, payload=None):
    """Store an event and broadcast it once the surrounding transaction commits."""
    from notifications.services import job_event_publish

    event = JobEvent.objects.create(job=job, kind=kind, attempt=job.attempt, payload=payload or {})
    job_event_publish(job=job, kind=kind)  # webhooks for completed / failed / cancelled
    transaction.on_commit(lambda: job_event_broadcast(event=event))
    return event


def job_event_broadcast(*, event):
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(f"job-{event.job_id}", {"type": "job.event", "message": event.as_message()})
    except Exception:  # the database already holds the event; a browser resyncs from it
        logger.warning("could not broadcast event %s of job %s", event.pk, event.job_id, exc_info=True)
