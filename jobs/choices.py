from django.db import models


class JobKind(models.TextChoices):
    TRAIN = "train", "Training"
    VALIDATE = "validate", "Validation"
    EXPORT = "export", "Export"
    INFER = "infer", "Inference"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# The one table of allowed status changes; services update conditionally from it.
JOB_TRANSITIONS = {
    JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED},
    JobStatus.RUNNING: {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLING, JobStatus.QUEUED},
    JobStatus.CANCELLING: {JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.COMPLETED},
    JobStatus.COMPLETED: set(),
    JobStatus.FAILED: set(),
    JobStatus.CANCELLED: set(),
}

TERMINAL_STATUSES = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
ACTIVE_STATUSES = {JobStatus.RUNNING, JobStatus.CANCELLING}


def statuses_allowing(target):
    """The statuses from which a job may move to `target`."""
    return [source for source, targets in JOB_TRANSITIONS.items() if target in targets]


class EventKind(models.TextChoices):
    QUEUED = "queued", "Queued"
    CLAIMED = "claimed", "Claimed by a worker"
    STARTED = "started", "Trainer started"
    PROGRESS = "progress", "Progress within an epoch"
    EPOCH = "epoch", "Epoch finished"
    LOG = "log", "Log lines"
    TRAINER_DONE = "trainer_done", "Trainer finished"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCEL_REQUESTED = "cancel_requested", "Cancel requested"
    CANCELLED = "cancelled", "Cancelled"
    REQUEUED = "requeued", "Re-queued"
    RESUMED = "resumed", "Resumed from a checkpoint"
    CHECKPOINT = "checkpoint", "Checkpoint saved"
    RESULTS = "results", "Validation results"
    PREDICTIONS = "predictions", "Per-image predictions"


class AttemptOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REQUEUED = "requeued", "Re-queued (crash or lost lease)"


class CheckpointKind(models.TextChoices):
    LAST = "last", "Last"
    BEST = "best", "Best"
