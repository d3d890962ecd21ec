import re

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from jobs.models import Checkpoint, Job, JobAttempt, JobEvent, ValidationResult

MODEL_FAMILIES = ("yolov8", "yolo11", "yolo26")
MODEL_SCALES = ("n", "s", "m", "l", "x")
MODEL_CHOICES = [f"{family}{scale}" for family in MODEL_FAMILIES for scale in MODEL_SCALES]
OPTIMIZERS = ["auto", "SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp"]
DEVICE_PATTERN = re.compile(r"^(|cpu|cuda:\d+|\d+(,\d+)*)$")
# Augmentation hyper-parameters a user may set, with their allowed ranges.
AUGMENTATIONS = {
    "hsv_h": (0.0, 1.0),
    "hsv_s": (0.0, 1.0),
    "hsv_v": (0.0, 1.0),
    "degrees": (0.0, 180.0),
    "translate": (0.0, 1.0),
    "scale": (0.0, 1.0),
    "shear": (0.0, 180.0),
    "perspective": (0.0, 0.001),
    "flipud": (0.0, 1.0),
    "fliplr": (0.0, 1.0),
    "mosaic": (0.0, 1.0),
    "mixup": (0.0, 1.0),
    "copy_paste": (0.0, 1.0),
    "close_mosaic": (0, 1000),
}


def _queue_choices():
    return settings.JOB_QUEUES


class TrainingConfigSerializer(serializers.Serializer):
    """A training configuration; every field has a default an experienced user would pick."""

    dataset = serializers.IntegerField(help_text="Id of a ready data set of yours.")
    model = serializers.ChoiceField(
        choices=MODEL_CHOICES, default="yolo11n", help_text="Family and size; built from its YAML."
    )
    epochs = serializers.IntegerField(min_value=1, max_value=1000, default=50)
    imgsz = serializers.IntegerField(min_value=32, max_value=2048, default=640)
    batch = serializers.IntegerField(min_value=1, max_value=1024, default=16)
    optimizer = serializers.ChoiceField(choices=OPTIMIZERS, default="auto")
    lr0 = serializers.FloatField(min_value=1e-6, max_value=1.0, default=0.01, help_text="Initial learning rate.")
    patience = serializers.IntegerField(
        min_value=0, default=100, help_text="Epochs without improvement before stopping."
    )
    seed = serializers.IntegerField(min_value=0, default=0)
    augment = serializers.DictField(
        required=False, default=dict, help_text='Augmentation switches, e.g. {"fliplr": 0}.'
    )
    device = serializers.CharField(required=False, allow_blank=True, default="", help_text="cpu, cuda:0, 0,1 or blank")
    workers = serializers.IntegerField(min_value=0, max_value=32, default=2, help_text="Data loader processes.")
    base_model = serializers.IntegerField(required=False, help_text="Id of a staff-uploaded base model to start from.")
    fine_tune_from = serializers.IntegerField(required=False, help_text="Id of an approved model version to fine-tune.")
    registered_model = serializers.CharField(
        max_length=200, required=False, help_text="Name of the registered model the version joins."
    )
    validate_after = serializers.BooleanField(default=True, help_text="Validate the best checkpoint at the end.")
    queue = serializers.CharField(default="gpu", help_text="Celery queue of the GPU workers to use.")
    priority = serializers.IntegerField(min_value=0, max_value=9, default=5, help_text="0 (low) to 9 (high).")

    def validate_imgsz(self, value):
        if value % 32:
            raise serializers.ValidationError("imgsz must be a multiple of 32.")
        return value

    def validate_device(self, value):
        if not DEVICE_PATTERN.match(value):
            raise serializers.ValidationError("device must be blank, 'cpu', 'cuda:N' or GPU ids like '0,1'.")
        return value

    def validate_queue(self, value):
        if value not in _queue_choices():
            raise serializers.ValidationError(f"queue must be one of {', '.join(_queue_choices())}.")
        return value

    def validate_augment(self, value):
        errors = []
        for key, raw in value.items():
            if key not in AUGMENTATIONS:
                errors.append(f"unknown augmentation {key!r}; allowed: {', '.join(AUGMENTATIONS)}")
                continue
            low, high = AUGMENTATIONS[key]
            if isinstance(raw, bool) or not isinstance(raw, int | float) or not low <= raw <= high:
                errors.append(f"{key} must be a number between {low} and {high}")
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate(self, attrs):
        if attrs.get("base_model") and attrs.get("fine_tune_from"):
            raise serializers.ValidationError(
                {"base_model": ["Choose a base model or a version to fine-tune, not both."]}
            )
        return attrs


class ValidationConfigSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    dataset = serializers.IntegerField()
    split = serializers.ChoiceField(choices=["train", "val"], default="val")
    conf = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.001)
    iou = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.7)
    imgsz = serializers.IntegerField(min_value=32, max_value=2048, default=640)
    batch = serializers.IntegerField(min_value=1, max_value=1024, default=16)
    device = serializers.CharField(required=False, allow_blank=True, default="")
    queue = serializers.CharField(default="gpu")
    priority = serializers.IntegerField(min_value=0, max_value=9, default=5)

    validate_device = TrainingConfigSerializer.validate_device
    validate_queue = TrainingConfigSerializer.validate_queue


class JobAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobAttempt
        fields = [
            "number",
            "worker",
            "device",
            "resumed_from_epoch",
            "outcome",
            "exit_code",
            "detail",
            "started_at",
            "ended_at",
        ]
        read_only_fields = fields


class CheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Checkpoint
        fields = ["epoch", "kind", "attempt", "sha256", "size", "created_at"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    heartbeat_age_seconds = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField()
    attempts = JobAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "dataset",
            "config",
            "status",
            "epoch",
            "epochs",
            "progress",
            "metrics",
            "eta_seconds",
            "error",
            "attempt",
            "max_attempts",
            "attempts",
            "worker",
            "device",
            "queue",
            "priority",
            "retry_of",
            "created_at",
            "started_at",
            "finished_at",
            "last_heartbeat_at",
            "heartbeat_age_seconds",
            "lease_until",
            "stale",
        ]
        read_only_fields = fields

    def get_heartbeat_age_seconds(self, job):
        if job.last_heartbeat_at is None:
            return None
        return round((timezone.now() - job.last_heartbeat_at).total_seconds(), 1)

    def get_stale(self, job):
        """True when the job should be alive but its lease lapsed (the worker stopped renewing)."""
        return bool(job.status in {"running", "cancelling"} and job.lease_until and job.lease_until < timezone.now())


class TrainingJobSerializer(JobSerializer):
    model_version = serializers.SerializerMethodField(help_text="The version this run produced.")
    fine_tune_from = serializers.PrimaryKeyRelatedField(source="model_version", read_only=True)
    checkpoints = CheckpointSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "model_version", "fine_tune_from", "checkpoints"]
        read_only_fields = fields

    def get_model_version(self, job):
        version = getattr(job, "trained_version", None)
        return version.pk if version else None


class ValidationResultSerializer(serializers.ModelSerializer):
    confusion_matrix_image = serializers.SerializerMethodField()

    class Meta:
        model = ValidationResult
        fields = [
            "split",
            "conf",
            "iou",
            "metrics",
            "per_class",
            "confusion_matrix",
            "confusion_matrix_image",
            "curves",
            "speed_ms",
            "created_at",
        ]
        read_only_fields = fields

    def get_confusion_matrix_image(self, result):
        if not result.confusion_matrix_image:
            return None
        request = self.context.get("request")
        path = reverse("validation-job-confusion-matrix", args=[result.job_id])
        return request.build_absolute_uri(path) if request else path


class ValidationJobSerializer(JobSerializer):
    model_version = serializers.PrimaryKeyRelatedField(read_only=True)
    result = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "model_version", "result"]
        read_only_fields = fields

    def get_result(self, job):
        result = getattr(job, "validation_result", None)
        return ValidationResultSerializer(result, context=self.context).data if result else None


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ["id", "kind", "attempt", "payload", "created_at"]
        read_only_fields = fields
