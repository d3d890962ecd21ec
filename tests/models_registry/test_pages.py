"""The model pages: a user's models with their versions' review state, one model's versions and a comparison."""

import html

import pytest
from django.utils import timezone

from jobs.choices import JobStatus
from jobs.models import ValidationResult
from models_registry.choices import ReviewStatus
from tests.factories import ModelVersionFactory, RegisteredModelFactory, TrainingJobFactory, ValidationJobFactory

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def model(user):
    return RegisteredModelFactory(owner=user, name="shapes", slug="alice-shapes", classes=["square", "disc"])


def version(model, number, **fields):
    return ModelVersionFactory(registered_model=model, number=number, **fields)


def validated(version, per_class):
    job = ValidationJobFactory(
        owner=version.created_by, model_version=version, dataset=version.dataset, status=JobStatus.COMPLETED
    )
    ValidationResult.objects.create(
        job=job, model_version=version, dataset=version.dataset, split="val", conf=0.001, iou=0.7, per_class=per_class
    )


def page_of(response):
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_list_shows_the_users_models_versions_review_state_and_metrics(browser, user, other_user, model, reviewer):
    job = TrainingJobFactory(owner=user, status=JobStatus.COMPLETED)
    version(
        model,
        1,
        training_job=job,
        review_status=ReviewStatus.REJECTED,
        review_note="disc recall too low",
        reviewer=reviewer,
        reviewed_at=timezone.now(),
        metrics={"mAP50": 0.61234, "mAP50-95": 0.4, "precision": 0.7, "recall": 0.55},
    )
    version(model, 2)
    RegisteredModelFactory(owner=other_user, name="their model")

    page = page_of(browser.get("/models/"))

    assert "shapes" in page and "their model" not in page
    assert 'data-review-status="rejected"' in page and "Reason: disc recall too low" in page
    assert 'data-review-status="pending_review"' in page and "Waiting for a reviewer" in page
    assert "0.612" in page and "0.400" in page and "0.550" in page
    assert f'href="/training/{job.pk}/"' in page


def test_the_detail_page_shows_every_version_with_its_review_and_deploys_only_approved_ones(browser, model, reviewer):
    approved = version(
        model,
        1,
        review_status=ReviewStatus.APPROVED,
        review_note="good enough",
        reviewer=reviewer,
        reviewed_at=timezone.now(),
    )
    pending = version(model, 2)
    validated(approved, [{"class": "square", "images": 3, "instances": 5, "mAP50": 0.7, "mAP50-95": 0.5}])

    page = page_of(browser.get(f"/models/{model.pk}/"))

    assert "Note: good enough" in page and "rita" in page
    assert "Waiting for a reviewer" in page
    assert f'data-version-id="{approved.pk}">Deploy v1</button>' in page
    assert f'data-version-id="{pending.pk}">Deploy' not in page
    assert f"/api/v1/model-versions/{approved.pk}/download/" in page
    assert "Per-class metrics of v1" in page and "0.700" in page


def test_the_comparison_shows_both_versions_metrics_and_the_difference(browser, model):
    a = version(model, 1, metrics={"mAP50": 0.5, "mAP50-95": 0.3, "precision": 0.6, "recall": 0.5})
    b = version(model, 2, metrics={"mAP50": 0.65, "mAP50-95": 0.25, "precision": 0.6, "recall": 0.7})
    validated(a, [{"class": "square", "mAP50": 0.4}, {"class": "disc", "mAP50": 0.6}])
    validated(b, [{"class": "square", "mAP50": 0.55}, {"class": "disc", "mAP50": 0.5}])

    page = page_of(browser.get(f"/models/{model.pk}/?a={a.pk}&b={b.pk}"))

    comparison = page[page.index('id="comparison"') :]
    assert "v1 (A) against v2 (B)" in comparison
    assert '<td>0.5000</td><td>0.6500</td>\n<td class="delta better">+0.1500' in comparison
    assert '<td>0.3000</td><td>0.2500</td>\n<td class="delta worse">-0.0500' in comparison
    assert '<td class="delta">0.0000' in comparison  # precision did not move
    per_class = comparison[comparison.index('id="compare-per-class"') :]
    assert 'data-class="square" data-metric="mAP50"' in per_class and "+0.1500" in per_class
    assert 'data-class="disc" data-metric="mAP50"' in per_class and "-0.1000" in per_class
    assert f'<option value="{a.pk}" selected>v1' in page and f'<option value="{b.pk}" selected>v2' in page


def test_a_comparison_with_a_version_of_another_model_is_not_shown(browser, user, model):
    mine = version(model, 1)
    version(model, 2)
    elsewhere = ModelVersionFactory(registered_model=RegisteredModelFactory(owner=user), number=1)

    page = page_of(browser.get(f"/models/{model.pk}/?a={mine.pk}&b={elsewhere.pk}"))

    assert 'id="comparison"' not in page and "Choose two versions of this model to compare." in page


def test_the_pages_need_a_login_and_are_scoped(browser, client, other_user):
    theirs = RegisteredModelFactory(owner=other_user)
    version(theirs, 1)

    assert client.get("/models/").status_code == 302
    assert client.get(f"/models/{theirs.pk}/").status_code == 302
    assert browser.get(f"/models/{theirs.pk}/").status_code == 404
