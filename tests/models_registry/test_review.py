"""The review gate: who may approve or reject, the audit trail, and the admin actions."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from jobs.services import job_claim
from models_registry.choices import ReviewStatus, VersionEventKind
from models_registry.models import ModelVersion, ModelVersionEvent
from models_registry.services import model_version_create_from_job
from tests.factories import ModelVersionFactory, TrainingJobFactory, UserFactory

URL = "/api/v1/model-versions/"
CHANGELIST = reverse("admin:models_registry_modelversion_changelist")

pytestmark = pytest.mark.django_db


def approve(client, version, **data):
    return client.post(f"{URL}{version.pk}/approve/", data, format="json")


def reject(client, version, **data):
    return client.post(f"{URL}{version.pk}/reject/", data, format="json")


def version_from_job(owner):
    """A version created the way training creates one (with its 'created' audit event)."""
    job = TrainingJobFactory(owner=owner)
    claimed, _ = job_claim(job_id=job.pk, worker="w")
    return model_version_create_from_job(
        job=claimed, artifact_name="models/best.pt", artifact_sha256="a" * 64, artifact_size=10, metrics={"mAP50": 0.7}
    )


@pytest.fixture
def version(user):
    return ModelVersionFactory(registered_model__owner=user)


def status_of(version):
    return ModelVersion.objects.get(pk=version.pk).review_status


# --- API permission matrix


def test_trainer_without_the_permission_cannot_approve(user, api, version):
    response = approve(api(user), version)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_reviewer"
    assert status_of(version) == ReviewStatus.PENDING_REVIEW


def test_reviewer_cannot_approve_a_version_they_trained(reviewer, api):
    own = ModelVersionFactory(registered_model__owner=reviewer)

    approved = approve(api(reviewer), own)
    rejected = reject(api(reviewer), own, reason="looks bad")

    for response in (approved, rejected):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "own_model"
    assert status_of(own) == ReviewStatus.PENDING_REVIEW
    assert not ModelVersionEvent.objects.filter(version=own).exists()


def test_separation_of_duties_can_be_switched_off(reviewer, api, settings):
    settings.REVIEW_SEPARATION_OF_DUTIES = False
    own = ModelVersionFactory(registered_model__owner=reviewer)

    response = approve(api(reviewer), own)

    assert response.status_code == 200
    assert status_of(own) == ReviewStatus.APPROVED


def test_another_plain_user_gets_not_found(other_user, api, version):
    client = api(other_user)

    assert client.get(f"{URL}{version.pk}/").status_code == 404
    assert approve(client, version).status_code == 404
    assert reject(client, version, reason="no").status_code == 404
    assert status_of(version) == ReviewStatus.PENDING_REVIEW


def test_reviewer_can_approve(reviewer, api, version):
    response = approve(api(reviewer), version, note="mAP is fine")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "approved"
    assert body["reviewer"] == "rita"
    assert body["review_note"] == "mAP is fine"
    assert body["reviewed_at"] is not None
    version.refresh_from_db()
    assert version.review_status == ReviewStatus.APPROVED
    assert version.reviewer == reviewer


def test_reviewer_can_reject_with_a_reason(reviewer, api, version):
    response = reject(api(reviewer), version, reason="  overfits the val split  ")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rejected"
    version.refresh_from_db()
    assert version.review_status == ReviewStatus.REJECTED
    assert version.review_note == "overfits the val split"


@pytest.mark.parametrize("data", [{}, {"reason": ""}, {"reason": "   "}])
def test_reject_without_a_reason_is_a_bad_request(reviewer, api, version, data):
    response = reject(api(reviewer), version, **data)

    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]
    assert status_of(version) == ReviewStatus.PENDING_REVIEW


@pytest.mark.parametrize("status", [ReviewStatus.APPROVED, ReviewStatus.REJECTED, ReviewStatus.ARCHIVED])
def test_reviewing_a_version_that_is_not_pending_is_a_conflict(reviewer, api, user, status):
    version = ModelVersionFactory(registered_model__owner=user, review_status=status)

    approved = approve(api(reviewer), version)
    rejected = reject(api(reviewer), version, reason="no")

    for response in (approved, rejected):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "conflict"
    assert status_of(version) == status
    assert not ModelVersionEvent.objects.filter(version=version).exists()


def test_reviewers_see_every_version_but_owners_only_their_own(reviewer, user, other_user, api):
    mine = ModelVersionFactory(registered_model__owner=user)
    theirs = ModelVersionFactory(registered_model__owner=other_user)

    as_reviewer = {row["id"] for row in api(reviewer).get(URL).json()["results"]}
    as_owner = {row["id"] for row in api(user).get(URL).json()["results"]}

    assert as_reviewer == {mine.pk, theirs.pk}
    assert as_owner == {mine.pk}


# --- audit trail


def test_audit_events_for_created_and_approved(reviewer, user, api):
    version = version_from_job(user)

    approve(api(reviewer), version, note="ok")

    events = list(ModelVersionEvent.objects.filter(version=version))
    assert [(e.kind, e.actor, e.reason) for e in events] == [
        (VersionEventKind.CREATED, user, ""),
        (VersionEventKind.APPROVED, reviewer, "ok"),
    ]
    body = api(user).get(f"{URL}{version.pk}/").json()
    assert [(e["kind"], e["actor"]) for e in body["events"]] == [("created", "alice"), ("approved", "rita")]


def test_audit_events_for_created_and_rejected(reviewer, user, api):
    version = version_from_job(user)

    reject(api(reviewer), version, reason="too few images")

    assert list(ModelVersionEvent.objects.filter(version=version).values_list("kind", "actor", "reason")) == [
        ("created", user.pk, ""),
        ("rejected", reviewer.pk, "too few images"),
    ]


def test_audit_events_cannot_be_changed_or_deleted(user):
    version = version_from_job(user)
    event = version.events.get()

    event.reason = "rewritten history"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
    with pytest.raises(ValueError, match="append-only"):
        ModelVersionEvent.objects.filter(pk=event.pk).update(reason="bulk rewrite")
    with pytest.raises(ValueError, match="append-only"):
        ModelVersionEvent.objects.filter(pk=event.pk).delete()

    stored = ModelVersionEvent.objects.get(pk=event.pk)
    assert stored.reason == ""
    assert stored.kind == VersionEventKind.CREATED


# --- admin


def action_post(client, action, version, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [version.pk], **extra})


def test_admin_reviewer_sees_and_uses_the_approve_action(client, reviewer, version):
    client.force_login(reviewer)
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert 'value="approve_versions"' in page.content.decode()

    response = action_post(client, "approve_versions", version, index=0)

    assert response.status_code == 302
    version.refresh_from_db()
    assert version.review_status == ReviewStatus.APPROVED
    assert version.reviewer == reviewer
    assert version.events.get().kind == VersionEventKind.APPROVED


def test_admin_reject_shows_the_reason_form_then_applies_it(client, reviewer, version):
    client.force_login(reviewer)

    form = action_post(client, "reject_versions", version, index=0)

    assert form.status_code == 200
    html = form.content.decode()
    assert 'name="reason"' in html
    assert 'name="apply"' in html
    assert f'value="{version.pk}"' in html
    assert status_of(version) == ReviewStatus.PENDING_REVIEW

    applied = action_post(client, "reject_versions", version, apply="Reject", reason="labels are shifted")

    assert applied.status_code == 302
    version.refresh_from_db()
    assert version.review_status == ReviewStatus.REJECTED
    assert version.review_note == "labels are shifted"
    assert version.events.get().reason == "labels are shifted"


def test_admin_reject_without_a_reason_shows_the_form_again(client, reviewer, version):
    client.force_login(reviewer)

    response = action_post(client, "reject_versions", version, apply="Reject", reason="")

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert status_of(version) == ReviewStatus.PENDING_REVIEW


def test_admin_reviewer_cannot_approve_their_own_version(client, reviewer):
    own = ModelVersionFactory(registered_model__owner=reviewer)
    client.force_login(reviewer)

    response = action_post(client, "approve_versions", own, index=0)

    assert response.status_code == 302
    assert status_of(own) == ReviewStatus.PENDING_REVIEW
    page = client.get(response["Location"])
    assert "You cannot review a model version you trained." in page.content.decode()


@pytest.fixture
def staff_viewer(db):
    """Staff who may look at versions in the admin but not review them."""
    staff = UserFactory(username="sam", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(content_type__app_label="models_registry", codename="view_modelversion")
    )
    return staff


def test_admin_staff_without_the_permission_does_not_see_the_actions(client, staff_viewer, version):
    client.force_login(staff_viewer)

    page = client.get(CHANGELIST)

    assert page.status_code == 200
    html = page.content.decode()
    assert str(version) in html
    assert "approve_versions" not in html
    assert "reject_versions" not in html


def test_admin_staff_without_the_permission_cannot_post_the_action(client, staff_viewer, version):
    client.force_login(staff_viewer)

    action_post(client, "approve_versions", version, index=0)
    action_post(client, "reject_versions", version, apply="Reject", reason="x")

    assert status_of(version) == ReviewStatus.PENDING_REVIEW
    assert not version.events.exists()
