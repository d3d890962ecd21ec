"""Reads for jobs, always scoped to the requesting user."""

from jobs.models import TrainingJob


def training_job_list(*, user):
    queryset = TrainingJob.objects.select_related("model_version", "dataset")
    if user.is_staff:
        return queryset
    return queryset.filter(owner=user)


def training_job_snapshot(job):
    """The job as the live feed's first message: the database's view, not a cache's."""
    from jobs.api.serializers import TrainingJobSerializer

    return {"type": "snapshot", "job": TrainingJobSerializer(job).data}
