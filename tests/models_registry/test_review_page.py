"""The reviewer's one screen: evidence on the admin change page, its buttons, the promotion policy, the evidence API."""

import html
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from jobs.choices import EventKind, JobStatus
from jobs.models import JobEvent, ValidationResult
from models_registry.choices import ReviewStatus, VersionEventKind
from models_registry.models import ModelVersion, RegisteredModel
from models_registry.services import model_version_record_event
from tests import datagen
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    TrainingJobFactory,
    UserFactory,
    ValidationJobFactory,
)

pytestmark = pytest.mark.django_db

API = "/api/v1/model-versions/"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
SQUARE = {
    "class": "square",
    "images": 3,
    "instances": 5,
    "precision": 0.9,
    "recall": 0.8,
    "mAP50": 0.7,
    "mAP50-95": 0.5,
}
DISC = {"class": "disc", "images": 2, "instances": 4, "precision": 0.6, "recall": 0.55, "mAP50": 0.45, "mAP50-95": 0.3}


# --- helpers


def completed_validation(version, per_class, *, status=JobStatus.COMPLETED, dataset=None, **fields):
    """A validation job of `version` (on its own data set unless told) with its stored result."""
    job = ValidationJobFactory(
        owner=version.created_by, model_version=version, dataset=dataset or version.dataset, status=status
    )
    return ValidationResult.objects.create(
        job=job,
        model_version=version,
        dataset=job.dataset,
        split="val",
        conf=0.001,
        iou=0.7,
        metrics={"mAP50": 0.575},
        per_class=per_class,
        **fields,
    )


def epoch_event(job, epoch, metrics, attempt=1):
    return JobEvent.objects.create(
        job=job, kind=EventKind.EPOCH, attempt=attempt, payload={"epoch": epoch, "epochs": 3, "metrics": metrics}
    )


def log_event(job, lines, attempt=1):
    return JobEvent.objects.create(job=job, kind=EventKind.LOG, attempt=attempt, payload={"lines": lines})


def change_url(version):
    return reverse("admin:models_registry_modelversion_change", args=[version.pk])


def approve_url(version):
    return reverse("admin:modelversion_approve", args=[version.pk])


def reject_url(version):
    return reverse("admin:modelversion_reject", args=[version.pk])


def evidence_file_url(version, which, index=0):
    return reverse("admin:modelversion_evidence_file", args=[version.pk, which, index])


def page_text(response):
    return html.unescape(response.content.decode())


def status_of(version):
    return ModelVersion.objects.get(pk=version.pk).review_status


def streamed(response):
    # Consuming the stream closes it through the test client's wrapper; an explicit close()
    # would send request_finished again and close the test transaction's connection.
    return b"".join(response.streaming_content)


@pytest.fixture
def version(user, media_root):
    training = TrainingJobFactory(owner=user, status=JobStatus.COMPLETED)
    return ModelVersionFactory(
        registered_model__owner=user,
        training_job=training,
        dataset=training.dataset,
        metrics={"mAP50": 0.575, "mAP50-95": 0.4125},
    )


@pytest.fixture
def staff_viewer(db):
    """Staff who may look at versions in the admin but not review them."""
    staff = UserFactory(username="sam", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(content_type__app_label="models_registry", codename="view_modelversion")
    )
    return staff


@pytest.fixture
def trainer_reviewer(reviewer):
    """A second reviewer (built like `reviewer`) who trained the version under review."""
    trainer = UserFactory(username="tom", is_staff=True)
    trainer.groups.add(Group.objects.get(name="reviewers"))
    return trainer


# --- 1. the evidence on the change page


def test_change_page_shows_metrics_per_class_table_and_confusion_matrix(client, reviewer, version):
    image = default_storage.save("jobs/confusion/confusion_matrix.png", ContentFile(PNG))
    completed_validation(version, [SQUARE, DISC], confusion_matrix_image=image)
    client.force_login(reviewer)

    response = client.get(change_url(version))

    assert response.status_code == 200
    text = page_text(response)
    assert "<h2>Final metrics</h2>" in text
    assert "<th>mAP50</th><th>mAP50-95</th>" in text
    assert "<td>0.5750</td><td>0.4125</td>" in text
    assert "(val split, conf 0.001, IoU 0.7)" in text
    assert (
        "<tr><td>square</td><td>3</td><td>5</td><td>0.900</td>\n"
        "          <td>0.800</td><td>0.700</td><td>0.500</td></tr>" in text
    )
    assert "<tr><td>disc</td><td>2</td><td>4</td><td>0.600</td>" in text
    assert "No completed validation yet." not in text
    assert f'<img src="{evidence_file_url(version, "confusion")}"' in text


def test_change_page_uses_only_the_newest_completed_validation_on_the_versions_dataset(client, reviewer, version):
    older = completed_validation(version, [{**SQUARE, "class": "older"}])
    ValidationResult.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))
    completed_validation(version, [SQUARE])
    completed_validation(version, [{**SQUARE, "class": "still-running"}], status=JobStatus.RUNNING)
    completed_validation(version, [{**SQUARE, "class": "elsewhere"}], dataset=ModelVersionFactory().dataset)
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    assert "<td>square</td>" in text
    for hidden in ("older", "still-running", "elsewhere"):
        assert f"<td>{hidden}</td>" not in text


def test_change_page_without_a_validation_says_so(client, reviewer, version):
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    assert "No completed validation yet." in text
    assert "/evidence/" not in text
    assert "Not enough epochs to draw." in text


def test_change_page_shows_the_gallery_images(client, reviewer, version):
    result = completed_validation(version, [SQUARE])
    names = [
        default_storage.save(f"jobs/{result.job_id}/gallery/{i}.jpg", ContentFile(datagen.sample_image_bytes(seed=i)))
        for i in range(2)
    ]
    ValidationResult.objects.filter(pk=result.pk).update(gallery=names)
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    assert "Predictions next to ground truth (val images)" in text
    assert f'<img src="{evidence_file_url(version, "gallery", 0)}"' in text
    assert f'<img src="{evidence_file_url(version, "gallery", 1)}"' in text
    assert evidence_file_url(version, "gallery", 2) not in text


def test_change_page_draws_the_training_curves(client, reviewer, version):
    epoch_event(version.training_job, 1, {"mAP50": 0.3, "train/box_loss": 1.2})
    epoch_event(version.training_job, 2, {"mAP50": 0.5, "train/box_loss": 0.9})
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    assert 'aria-label="Training curves"' in text
    assert text.count("<polyline") == 2
    assert "mAP50 (0.5)" in text
    assert "train/box_loss (0.9)" in text
    assert "Not enough epochs to draw." not in text


def test_change_page_does_not_draw_curves_from_one_epoch(client, reviewer, version):
    epoch_event(version.training_job, 1, {"mAP50": 0.3})
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    assert 'aria-label="Training curves"' not in text
    assert "Not enough epochs to draw." in text


def test_change_page_shows_dataset_problems_log_tail_and_audit_events(client, reviewer, user, version):
    dataset = version.dataset
    dataset.errors = [{"file": "labels/train/a.txt", "line": 3, "reason": "class id 7 is out of range"}]
    dataset.save(update_fields=["errors"])
    log_event(version.training_job, ["loading data", "epoch 1/3 done"])
    log_event(version.training_job, ["best.pt saved"], attempt=2)
    model_version_record_event(version=version, kind=VersionEventKind.CREATED, actor=user, reason="from job")
    model_version_record_event(version=version, kind=VersionEventKind.REJECTED, actor=reviewer, reason="labels shift")
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    assert "<td>labels/train/a.txt</td><td>3</td><td>class id 7 is out of range</td>" in text
    assert "No problems reported." not in text
    assert "Training log (last lines)" in text
    assert "[attempt 1] loading data\n[attempt 1] epoch 1/3 done\n[attempt 2] best.pt saved" in text
    # The append-only audit trail, inline.
    assert "from job" in text
    assert "labels shift" in text
    assert "Rejected" in text


def test_change_page_without_dataset_problems_says_so(client, reviewer, version):
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    assert "No problems reported." in text
    assert "Training log (last lines)" not in text


# --- 1b. the evidence file view


def test_evidence_file_view_streams_the_confusion_matrix_and_gallery(client, reviewer, version):
    result = completed_validation(version, [SQUARE])
    image = default_storage.save(f"jobs/{result.job_id}/confusion_matrix.png", ContentFile(PNG))
    jpegs = [datagen.sample_image_bytes(seed=i) for i in range(2)]
    names = [default_storage.save(f"jobs/{result.job_id}/gallery/{i}.jpg", ContentFile(d)) for i, d in enumerate(jpegs)]
    ValidationResult.objects.filter(pk=result.pk).update(confusion_matrix_image=image, gallery=names)
    client.force_login(reviewer)

    confusion = client.get(evidence_file_url(version, "confusion"))
    assert confusion.status_code == 200
    assert confusion["Content-Type"] == "image/png"
    assert streamed(confusion) == PNG

    second = client.get(evidence_file_url(version, "gallery", 1))
    assert second.status_code == 200
    assert second["Content-Type"] == "image/jpeg"
    assert streamed(second) == jpegs[1]

    assert client.get(evidence_file_url(version, "gallery", 2)).status_code == 404
    assert client.get(evidence_file_url(version, "gallery", 99)).status_code == 404
    assert client.get(evidence_file_url(version, "curves", 0)).status_code == 404


def test_evidence_file_view_404s_without_an_image_or_a_validation(client, reviewer, version):
    client.force_login(reviewer)
    assert client.get(evidence_file_url(version, "confusion")).status_code == 404

    completed_validation(version, [SQUARE])

    assert client.get(evidence_file_url(version, "confusion")).status_code == 404
    assert client.get(evidence_file_url(version, "gallery", 0)).status_code == 404


def test_evidence_file_view_is_not_for_staff_without_the_view_permission(client, staff_user, version):
    result = completed_validation(version, [SQUARE])
    image = default_storage.save(f"jobs/{result.job_id}/confusion_matrix.png", ContentFile(PNG))
    ValidationResult.objects.filter(pk=result.pk).update(confusion_matrix_image=image)
    client.force_login(staff_user)

    assert client.get(evidence_file_url(version, "confusion")).status_code == 404


# --- 2. the buttons


def test_a_reviewer_who_did_not_train_it_sees_approve_and_reject(client, reviewer, version):
    client.force_login(reviewer)

    text = page_text(client.get(change_url(version)))

    approve_form = f'<form id="approve-review" method="post" action="{approve_url(version)}">'
    reject_form = f'<form id="reject-review" method="post" action="{reject_url(version)}">'
    # A form nested in the admin's change form would be dropped by the browser (the buttons would
    # submit the change form): the review forms come after it, and the fields point to them.
    change_form_end = text.index("</form>", text.index('id="modelversion_form"'))
    assert text.index(approve_form) > change_form_end and text.index(reject_form) > change_form_end
    assert 'value="Approve" name="approve" form="approve-review"' in text
    assert 'value="Reject" name="reject" form="reject-review"' in text
    assert 'name="note"' in text and 'form="approve-review"' in text
    assert 'name="reason"' in text and 'form="reject-review"' in text
    assert "You trained this version" not in text


def test_the_reviewer_who_trained_it_sees_no_forms(client, trainer_reviewer, media_root):
    own = ModelVersionFactory(registered_model__owner=trainer_reviewer)
    client.force_login(trainer_reviewer)

    response = client.get(change_url(own))

    assert response.status_code == 200
    text = page_text(response)
    assert "You trained this version: someone else must review it." in text
    assert approve_url(own) not in text
    assert reject_url(own) not in text
    assert 'value="Approve"' not in text


def test_staff_without_the_approve_permission_sees_no_forms(client, staff_viewer, version):
    client.force_login(staff_viewer)

    response = client.get(change_url(version))

    assert response.status_code == 200
    text = page_text(response)
    assert "<h2>Final metrics</h2>" in text
    assert approve_url(version) not in text
    assert reject_url(version) not in text
    assert "You trained this version" not in text


def test_a_reviewed_version_shows_the_decision_instead_of_forms(client, reviewer, version):
    client.force_login(reviewer)
    client.post(approve_url(version), {"note": "fine by me"})

    text = page_text(client.get(change_url(version)))

    assert "Approved by rita on" in text
    assert "“fine by me”" in text
    assert approve_url(version) not in text


def test_post_approve_approves_with_the_note_and_redirects(client, reviewer, version):
    client.force_login(reviewer)

    response = client.post(approve_url(version), {"note": "  curves look healthy  "})

    assert response.status_code == 302
    assert response["Location"] == change_url(version)
    version.refresh_from_db()
    assert version.review_status == ReviewStatus.APPROVED
    assert version.reviewer == reviewer
    assert version.review_note == "curves look healthy"
    assert version.reviewed_at is not None
    event = version.events.get()
    assert (event.kind, event.actor, event.reason) == (VersionEventKind.APPROVED, reviewer, "curves look healthy")
    assert f"Approved {version}." in page_text(client.get(response["Location"]))


def test_post_reject_without_a_reason_does_not_reject(client, reviewer, version):
    client.force_login(reviewer)

    for data in ({}, {"reason": ""}, {"reason": "   "}):
        response = client.post(reject_url(version), data)
        assert response.status_code == 302, data
        assert response["Location"] == change_url(version)
        assert status_of(version) == ReviewStatus.PENDING_REVIEW

    assert "A rejection needs a reason." in page_text(client.get(change_url(version)))
    assert not version.events.exists()


def test_post_reject_with_a_reason_rejects(client, reviewer, version):
    client.force_login(reviewer)

    response = client.post(reject_url(version), {"reason": "labels are shifted"}, follow=True)

    assert response.redirect_chain == [(change_url(version), 302)]
    version.refresh_from_db()
    assert version.review_status == ReviewStatus.REJECTED
    assert version.review_note == "labels are shifted"
    assert version.reviewer == reviewer
    assert version.events.get().kind == VersionEventKind.REJECTED
    assert f"Rejected {version}." in page_text(response)


def test_get_on_the_review_urls_is_refused(client, reviewer, version):
    client.force_login(reviewer)

    assert client.get(approve_url(version)).status_code == 403
    assert client.get(reject_url(version)).status_code == 403
    assert client.get(reject_url(version), {"reason": "via a link"}).status_code == 403
    assert status_of(version) == ReviewStatus.PENDING_REVIEW


def test_staff_without_the_permission_posting_is_refused(client, staff_viewer, version):
    client.force_login(staff_viewer)

    assert client.post(approve_url(version), {"note": "ok"}).status_code == 403
    assert client.post(reject_url(version), {"reason": "bad"}).status_code == 403
    assert client.post(reject_url(version), {}).status_code == 403
    assert status_of(version) == ReviewStatus.PENDING_REVIEW
    assert not version.events.exists()


def test_the_trainer_reviewer_posting_gets_an_error_message(client, trainer_reviewer, media_root):
    own = ModelVersionFactory(registered_model__owner=trainer_reviewer)
    client.force_login(trainer_reviewer)

    response = client.post(approve_url(own), {"note": "mine is great"}, follow=True)

    assert response.status_code == 200
    assert "You cannot review a model version you trained." in page_text(response)
    assert status_of(own) == ReviewStatus.PENDING_REVIEW


# --- 3. the promotion policy


def api_approve(client, version, **data):
    return client.post(f"{API}{version.pk}/approve/", data, format="json")


def test_min_map50_blocks_approval_via_the_api(reviewer, api, version):
    RegisteredModel.objects.filter(pk=version.registered_model_id).update(min_map50=0.6)
    version.metrics = {"mAP50": 0.5}
    version.save(update_fields=["metrics"])

    response = api_approve(api(reviewer), version, note="ok")

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "policy_blocked"
    assert error["fields"] == {"policy": ["mAP50 0.5 is below the minimum 0.6"]}
    assert "mAP50 0.5 is below the minimum 0.6" in error["message"]
    assert status_of(version) == ReviewStatus.PENDING_REVIEW
    assert not version.events.exists()


def test_min_map50_blocks_a_version_without_the_metric(reviewer, api, version):
    RegisteredModel.objects.filter(pk=version.registered_model_id).update(min_map50=0.6)
    version.metrics = {}
    version.save(update_fields=["metrics"])

    response = api_approve(api(reviewer), version)

    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {"policy": ["mAP50 unknown is below the minimum 0.6"]}


def test_min_map50_allows_a_version_at_or_above_it(reviewer, api, version):
    RegisteredModel.objects.filter(pk=version.registered_model_id).update(min_map50=0.5)
    version.metrics = {"mAP50": 0.5}
    version.save(update_fields=["metrics"])

    response = api_approve(api(reviewer), version)

    assert response.status_code == 200, response.content
    assert status_of(version) == ReviewStatus.APPROVED


def test_min_map50_blocks_the_admin_button_and_the_page_says_why(client, reviewer, version):
    RegisteredModel.objects.filter(pk=version.registered_model_id).update(min_map50=0.6)
    version.metrics = {"mAP50": 0.5}
    version.save(update_fields=["metrics"])
    client.force_login(reviewer)

    page = page_text(client.get(change_url(version)))
    assert "The promotion policy blocks approval:" in page
    assert "<br>mAP50 0.5 is below the minimum 0.6" in page

    response = client.post(approve_url(version), {"note": "ok"}, follow=True)

    assert response.redirect_chain == [(change_url(version), 302)]
    text = page_text(response)
    assert "The promotion policy blocks this approval: mAP50 0.5 is below the minimum 0.6" in text
    assert f"Approved {version}." not in text
    assert status_of(version) == ReviewStatus.PENDING_REVIEW
    assert not version.events.exists()


@pytest.fixture
def lineage(user, media_root):
    """An approved v1 (validated) and a pending v2 of the same registered model, with a class-regression policy."""
    registered = RegisteredModelFactory(owner=user, classes=["square", "disc"], max_class_regression=0.05)
    baseline = ModelVersionFactory(
        registered_model=registered,
        number=1,
        review_status=ReviewStatus.APPROVED,
        reviewed_at=timezone.now(),
        metrics={"mAP50": 0.7},
    )
    completed_validation(baseline, [{"class": "square", "mAP50": 0.8}, {"class": "disc", "mAP50": 0.6}])
    candidate = ModelVersionFactory(registered_model=registered, number=2, metrics={"mAP50": 0.7})
    return baseline, candidate


def test_a_class_regression_beyond_the_limit_blocks_approval(reviewer, api, lineage):
    baseline, candidate = lineage
    completed_validation(candidate, [{"class": "square", "mAP50": 0.7}, {"class": "disc", "mAP50": 0.65}])

    response = api_approve(api(reviewer), candidate)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "policy_blocked"
    assert error["fields"] == {"policy": ["class 'square' regresses by 0.100 mAP50 against v1 (allowed 0.05)"]}
    assert status_of(candidate) == ReviewStatus.PENDING_REVIEW


def test_a_class_regression_blocks_the_admin_page_too(client, reviewer, lineage):
    baseline, candidate = lineage
    completed_validation(candidate, [{"class": "square", "mAP50": 0.7}, {"class": "disc", "mAP50": 0.6}])
    client.force_login(reviewer)

    text = page_text(client.get(change_url(candidate)))

    assert "class 'square' regresses by 0.100 mAP50 against v1" in text
    assert "<h2>Against the approved v1</h2>" in text
    assert '<td class="bad">-0.100</td>' in text

    client.post(approve_url(candidate))
    assert status_of(candidate) == ReviewStatus.PENDING_REVIEW


def test_a_small_class_regression_is_allowed(reviewer, api, lineage):
    baseline, candidate = lineage
    completed_validation(candidate, [{"class": "square", "mAP50": 0.79}, {"class": "disc", "mAP50": 0.6}])

    response = api_approve(api(reviewer), candidate)

    assert response.status_code == 200, response.content
    assert status_of(candidate) == ReviewStatus.APPROVED


def test_a_class_missing_from_the_candidates_validation_blocks_approval(reviewer, api, lineage):
    baseline, candidate = lineage
    completed_validation(candidate, [{"class": "square", "mAP50": 0.8}])

    response = api_approve(api(reviewer), candidate)

    assert response.status_code == 409
    assert response.json()["error"]["fields"] == {
        "policy": ["class 'disc' has no validation result to compare with v1"]
    }


def test_without_an_approved_baseline_the_regression_policy_allows(reviewer, api, user, media_root):
    registered = RegisteredModelFactory(owner=user, max_class_regression=0.05)
    ModelVersionFactory(registered_model=registered, number=1, review_status=ReviewStatus.REJECTED)
    candidate = ModelVersionFactory(registered_model=registered, number=2)
    completed_validation(candidate, [{"class": "square", "mAP50": 0.1}, {"class": "disc", "mAP50": 0.1}])

    response = api_approve(api(reviewer), candidate)

    assert response.status_code == 200, response.content
    assert status_of(candidate) == ReviewStatus.APPROVED


def test_a_baseline_of_another_registered_model_is_not_compared(reviewer, api, lineage, user):
    baseline, _ = lineage
    other = RegisteredModelFactory(owner=user, max_class_regression=0.05)
    candidate = ModelVersionFactory(registered_model=other, number=1)
    completed_validation(candidate, [{"class": "square", "mAP50": 0.1}, {"class": "disc", "mAP50": 0.1}])

    assert api_approve(api(reviewer), candidate).status_code == 200


# --- 3b. changing the policy


def registered_url(model):
    return f"/api/v1/registered-models/{model.slug}/"


def test_staff_can_change_the_promotion_policy(staff_user, api, user):
    model = RegisteredModelFactory(owner=user, name="shapes")

    response = api(staff_user).patch(
        registered_url(model), {"min_map50": 0.6, "max_class_regression": 0.05, "name": "renamed"}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["min_map50"], body["max_class_regression"], body["name"]) == (0.6, 0.05, "shapes")
    model.refresh_from_db()
    assert (model.min_map50, model.max_class_regression, model.name) == (0.6, 0.05, "shapes")


def test_the_owner_cannot_change_the_policy(user, api):
    model = RegisteredModelFactory(owner=user)

    response = api(user).patch(registered_url(model), {"min_map50": 0.6}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    model.refresh_from_db()
    assert model.min_map50 is None
    assert api(user).get(registered_url(model)).status_code == 200


def test_another_user_does_not_find_the_registered_model(other_user, user, api):
    model = RegisteredModelFactory(owner=user)

    assert api(other_user).patch(registered_url(model), {"min_map50": 0.6}, format="json").status_code == 404
    assert api(other_user).get(registered_url(model)).status_code == 404
    model.refresh_from_db()
    assert model.min_map50 is None


@pytest.mark.parametrize(
    ("field", "value"), [("min_map50", 1.5), ("min_map50", -0.1), ("max_class_regression", 2), ("min_map50", "x")]
)
def test_policy_values_outside_zero_to_one_are_refused(staff_user, api, user, field, value):
    model = RegisteredModelFactory(owner=user)

    response = api(staff_user).patch(registered_url(model), {field: value}, format="json")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {field}
    model.refresh_from_db()
    assert getattr(model, field) is None


def test_staff_can_clear_the_policy(staff_user, api, user):
    model = RegisteredModelFactory(owner=user, min_map50=0.6)

    response = api(staff_user).patch(registered_url(model), {"min_map50": None}, format="json")

    assert response.status_code == 200, response.content
    model.refresh_from_db()
    assert model.min_map50 is None


# --- 4. the evidence API


def evidence(client, version):
    return client.get(f"{API}{version.pk}/evidence/")


def test_evidence_api_has_everything_a_reviewer_needs(user, reviewer, api, lineage):
    baseline, candidate = lineage
    training = TrainingJobFactory(owner=user, dataset=candidate.dataset, status=JobStatus.COMPLETED)
    ModelVersion.objects.filter(pk=candidate.pk).update(training_job=training)
    candidate.refresh_from_db()
    candidate.dataset.errors = [{"file": "a.txt", "line": 1, "reason": "empty label"}]
    candidate.dataset.save(update_fields=["errors"])
    result = completed_validation(candidate, [{"class": "square", "mAP50": 0.7}, {"class": "disc", "mAP50": 0.65}])
    epoch_event(training, 1, {"mAP50": 0.2})
    epoch_event(training, 2, {"mAP50": 0.4}, attempt=1)
    epoch_event(training, 2, {"mAP50": 0.45}, attempt=2)  # the resumed attempt repeats epoch 2
    epoch_event(training, 3, {"mAP50": 0.5}, attempt=2)
    log_event(training, ["resuming from epoch 1"], attempt=2)

    response = evidence(api(reviewer), candidate)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == candidate.pk
    assert body["validation_job"] == result.job_id
    assert body["per_class"] == [{"class": "square", "mAP50": 0.7}, {"class": "disc", "mAP50": 0.65}]
    assert body["baseline_version"] == baseline.pk
    assert body["per_class_deltas"] == [
        {"class": "square", "mAP50": 0.7, "baseline_mAP50": 0.8, "delta": -0.1},
        {"class": "disc", "mAP50": 0.65, "baseline_mAP50": 0.6, "delta": 0.05},
    ]
    assert body["policy_violations"] == ["class 'square' regresses by 0.100 mAP50 against v1 (allowed 0.05)"]
    assert body["history"] == [
        {"epoch": 1, "mAP50": 0.2},
        {"epoch": 2, "mAP50": 0.45},
        {"epoch": 3, "mAP50": 0.5},
    ]
    assert body["dataset"] == {
        "id": candidate.dataset_id,
        "errors": [{"file": "a.txt", "line": 1, "reason": "empty label"}],
    }
    assert body["log_tail"] == ["[attempt 2] resuming from epoch 1"]


def test_evidence_api_for_a_version_without_validation_or_training_job(user, api, media_root):
    version = ModelVersionFactory(registered_model__owner=user)

    body = evidence(api(user), version).json()

    assert body["validation_job"] is None
    assert body["per_class"] == []
    assert body["confusion_matrix"] == {}
    assert body["baseline_version"] is None
    assert body["per_class_deltas"] == []
    assert body["policy_violations"] == []
    assert body["history"] == []
    assert body["log_tail"] == []


def test_evidence_api_is_for_the_owner_and_reviewers_only(user, other_user, reviewer, api, version):
    completed_validation(version, [SQUARE])

    assert evidence(api(user), version).status_code == 200
    assert evidence(api(reviewer), version).status_code == 200
    assert evidence(api(reviewer), version).json()["per_class"] == [SQUARE]
    assert evidence(api(other_user), version).status_code == 404
    assert evidence(api(None), version).status_code in (401, 403)
