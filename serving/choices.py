from django.db import models


class DeploymentStatus(models.TextChoices):
    STARTING = "starting", "Starting"
    ACTIVE = "active", "Active"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


DEPLOYMENT_TRANSITIONS = {
    DeploymentStatus.STARTING: {DeploymentStatus.ACTIVE, DeploymentStatus.FAILED, DeploymentStatus.STOPPING},
    DeploymentStatus.ACTIVE: {DeploymentStatus.STOPPING, DeploymentStatus.FAILED},
    DeploymentStatus.STOPPING: {DeploymentStatus.STOPPED, DeploymentStatus.FAILED},
    DeploymentStatus.STOPPED: set(),
    DeploymentStatus.FAILED: set(),
}


def deployment_statuses_allowing(target):
    return [source for source, targets in DEPLOYMENT_TRANSITIONS.items() if target in targets]
