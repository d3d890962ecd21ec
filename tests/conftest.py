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


@pytest.fixture
def staff_user(db):
    return UserFactory(username="stella", is_staff=True)


@pytest.fixture
def media_root(settings, tmp_path):
    """This test's own file storage, data set cache and work folders (nothing shared between tests)."""
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(media)}},
    }
    settings.CACHE_DIR = tmp_path / "cache"
    settings.WORK_DIR = tmp_path / "work"
    return media


@pytest.fixture
def image_upload():
    def make(data=None, name="image.jpg", content_type="image/jpeg"):
        return SimpleUploadedFile(name, datagen.sample_image_bytes() if data is None else data, content_type)

    return make


@pytest.fixture
def browser(user):
    """Django's test client signed in as `user`, for the dashboard's pages."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client
