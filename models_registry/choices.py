from django.db import models


class ReviewStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    ARCHIVED = "archived", "Archived"


REVIEW_TRANSITIONS = {
    ReviewStatus.PENDING_REVIEW: {ReviewStatus.APPROVED, ReviewStatus.REJECTED, ReviewStatus.ARCHIVED},
    ReviewStatus.APPROVED: {ReviewStatus.ARCHIVED},
    ReviewStatus.REJECTED: {ReviewStatus.ARCHIVED},
    ReviewStatus.ARCHIVED: set(),
}


class VersionEventKind(models.TextChoices):
    CREATED = "created", "Created"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    DEPLOYED = "deployed", "Deployed"
    UNDEPLOYED = "undeployed", "Undeployed"
    ARCHIVED = "archived", "Archived"
