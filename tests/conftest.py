import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests import datagen
from tests.factories import UserFactory


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def reviewer(db):
    from django.core.management import call_command

    call_command("bootstrap", "--no-demo-accounts")
    reviewer = UserFactory(username="rita", is_staff=True)
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    return reviewer


@pytest.fixture
def api():
    def client_for(user):
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def dataset_zip():
    return datagen.detection_zip(train=6, val=3, size=64)


@pytest.fixture
def upload():
    def make(data, name="data.zip"):
        return SimpleUploadedFile(name, data, content_type="application/zip")

    return make
