"""factory_boy factories for the portal's rows."""

import uuid

import factory
from django.contrib.auth import get_user_model

from datasets.choices import DatasetStatus
from datasets.models import Dataset
from jobs.choices import JobKind
from jobs.models import Job
from models_registry.choices import ReviewStatus
from models_registry.models import ModelVersion, RegisteredModel
from serving.choices import DeploymentStatus
from serving.models import Deployment


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"dataset {n}")
    upload_uuid = factory.LazyFunction(uuid.uuid4)
    archive = factory.django.FileField(filename="archive.zip", data=b"PK")
    status = DatasetStatus.READY
    classes = ["square", "disc"]
    num_images = 9
    content_sha256 = factory.LazyFunction(lambda: uuid.uuid4().hex * 2)


class TrainingJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    owner = factory.SubFactory(UserFactory)
    dataset = factory.SubFactory(DatasetFactory, owner=factory.SelfAttribute("..owner"))
    config = factory.LazyFunction(lambda: {"model": "yolo11n", "epochs": 3, "imgsz": 64, "batch": 4})
    epochs = 3


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"model {n}")
    slug = factory.Sequence(lambda n: f"model-{n}")
    classes = ["square", "disc"]


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    registered_model = factory.SubFactory(RegisteredModelFactory)
    created_by = factory.SelfAttribute("registered_model.owner")
    dataset = factory.SubFactory(DatasetFactory, owner=factory.SelfAttribute("..created_by"))
    number = factory.Sequence(lambda n: n + 1)
    metrics = factory.LazyFunction(lambda: {"mAP50": 0.5})
    artifact = factory.django.FileField(filename="best.pt", data=b"weights")
    artifact_sha256 = "0" * 64


class ValidationJobFactory(factory.django.DjangoModelFactory):
    """A queued validation of one of the owner's versions on that version's data set."""

    class Meta:
        model = Job

    kind = JobKind.VALIDATE
    owner = factory.SubFactory(UserFactory)
    model_version = factory.SubFactory(ModelVersionFactory, registered_model__owner=factory.SelfAttribute("...owner"))
    dataset = factory.SelfAttribute("model_version.dataset")
    config = factory.LazyFunction(lambda: {"split": "val", "conf": 0.001, "iou": 0.7})
    epochs = 0


class DeploymentFactory(factory.django.DjangoModelFactory):
    """A deployment of an approved version of the owner's own model."""

    class Meta:
        model = Deployment

    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"deployment {n}")
    model_version = factory.SubFactory(
        ModelVersionFactory,
        registered_model__owner=factory.SelfAttribute("...owner"),
        review_status=ReviewStatus.APPROVED,
    )
    artifact_sha256 = factory.SelfAttribute("model_version.artifact_sha256")
    status = DeploymentStatus.STARTING
    shutdown_token = factory.Sequence(lambda n: f"shutdown-{n}")
