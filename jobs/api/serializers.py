import re

from django.utils import timezone
from rest_framework import serializers

from jobs.models import JobEvent, TrainingJob

MODEL_FAMILIES = ("yolov8", "yolo11", "yolo26")
MODEL_SCALES = ("n", "s", "m", "l", "x")
MODEL_CHOICES = [f"{family}{scale}" for family in MODEL_FAMILIES for scale in MODEL_SCALES]
DEVICE_PATTERN = re.compile(r"^(|cpu|cuda:\d+|\d+(,\d+)*)$")


class TrainingConfigSerializer(serializers.Serializer):
    """A training configuration; every field has a default an experienced user would pick."""

    dataset = serializers.IntegerField(help_text="Id of a ready data set of yours.")
    model = serializers.ChoiceField(choices=MODEL_CHOICES, default="yolo11n", help_text="Built from its YAML.")
    epochs = serializers.IntegerField(min_value=1, max_value=1000, default=50)
    imgsz = serializers.IntegerField(min_value=32, max_value=2048, default=640)
    batch = serializers.IntegerField(min_value=1, max_value=1024, default=16)
    device = serializers.CharField(required=False, allow_blank=True, default="", help_text="cpu, cuda:0, 0,1 or blank")
    seed = serializers.IntegerField(min_value=0, default=0)
    patience = serializers.IntegerField(min_value=0, default=100)
    workers = serializers.IntegerField(min_value=0, max_value=32, default=2, help_text="Data loader processes.")
    registered_model = serializers.CharField(
        max_length=200, required=False, help_text="Name of the registered model the version joins."
    )

    def validate_imgsz(self, value):
        if value % 32:
            raise serializers.ValidationError("imgsz must be a multiple of 32.")
        return value

    def validate_device(self, value):
        if not DEVICE_PATTERN.match(value):
            raise serializers.ValidationError("device must be blank, 'cpu', 'cuda:N' or GPU ids like '0,1'.")
        return value


class TrainingJobSerializer(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    heartbeat_age_seconds = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "dataset",
            "config",
            "status",
            "epoch",
            "epochs",
            "progress",
            "metrics",
            "eta_seconds",
            "model_version",
            "error",
            "attempt",
            "max_attempts",
            "worker",
            "device",
            "created_at",
            "started_at",
            "finished_at",
            "last_heartbeat_at",
            "heartbeat_age_seconds",
            "lease_until",
            "stale",
        ]
        read_only_fields = fields

    def get_model_version(self, job):
        version = getattr(job, "model_version", None)
        return version.pk if version else None

    def get_heartbeat_age_seconds(self, job):
        if job.last_heartbeat_at is None:
            return None
        return round((timezone.now() - job.last_heartbeat_at).total_seconds(), 1)

    def get_stale(self, job):
        return bool(job.status == "running" and job.lease_until and job.lease_until < timezone.now())


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ["id", "kind", "attempt", "payload", "created_at"]
        read_only_fields = fields
