"""Base models: staff upload pretrained weights through the admin; the portal records their sha256."""

import hashlib

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from models_registry.models import BaseModel
from tests.factories import UserFactory

ADD = "/admin/models_registry/basemodel/add/"
CHANGELIST = "/admin/models_registry/basemodel/"
WEIGHTS = b"\x80\x02pretend pickled weights" * 64

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


def upload_form(name="yolo11n-coco", data=WEIGHTS):
    return {
        "name": name,
        "description": "COCO-pretrained yolo11n",
        "weights": SimpleUploadedFile("yolo11n.pt", data, content_type="application/octet-stream"),
    }


def test_superuser_uploads_a_base_model(client, superuser, media_root):
    client.force_login(superuser)
    assert client.get(ADD).status_code == 200

    response = client.post(ADD, upload_form())

    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == CHANGELIST
    base = BaseModel.objects.get()
    digest = hashlib.sha256(WEIGHTS).hexdigest()
    assert base.name == "yolo11n-coco"
    assert base.description == "COCO-pretrained yolo11n"
    assert base.sha256 == digest
    assert base.size == len(WEIGHTS)
    assert base.uploaded_by == superuser
    assert base.weights.name == f"base-models/yolo11n-coco-{digest[:12]}.pt"
    with default_storage.open(base.weights.name, "rb") as handle:
        assert handle.read() == WEIGHTS
    changelist = client.get(CHANGELIST)
    assert changelist.status_code == 200
    assert digest in changelist.content.decode()


def test_the_upload_form_does_not_let_staff_set_the_digest_or_uploader(client, superuser, media_root):
    other = UserFactory(username="mallory")
    client.force_login(superuser)
    form = {**upload_form(), "sha256": "0" * 64, "size": 1, "uploaded_by": other.pk}

    assert client.post(ADD, form).status_code == 302

    base = BaseModel.objects.get()
    assert base.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert (base.size, base.uploaded_by) == (len(WEIGHTS), superuser)


def test_an_upload_without_weights_is_refused(client, superuser, media_root):
    client.force_login(superuser)
    form = upload_form()
    del form["weights"]

    response = client.post(ADD, form)

    assert response.status_code == 200  # the form again, with its error
    assert "weights" in response.context["adminform"].form.errors
    assert not BaseModel.objects.exists()


def test_a_plain_user_cannot_reach_the_upload_page(client, user, media_root):
    client.force_login(user)

    page = client.get(ADD)
    posted = client.post(ADD, upload_form())

    for response in (page, posted):
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    assert not BaseModel.objects.exists()


def test_staff_without_permission_is_refused(client, staff_user, media_root):
    client.force_login(staff_user)

    assert client.get(ADD).status_code == 403
    assert client.post(ADD, upload_form()).status_code == 403
    assert not BaseModel.objects.exists()
