"""The deployment pages (endpoints, deploy form, playground hooks) and the inference job pages."""

import html
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone

from jobs.choices import JobKind, JobStatus
from jobs.models import Job
from models_registry.choices import ReviewStatus
from serving import services
from serving.models import InferenceResult
from tests.factories import ModelVersionFactory, RegisteredModelFactory

pytestmark = [pytest.mark.django_db]
BOX = {"class_id": 1, "class_name": "disc", "confidence": 0.9, "bbox": [1.0, 2.0, 30.0, 40.0]}


@pytest.fixture
def no_tasks():
    with (
        mock.patch("serving.tasks.deployment_start_task.delay"),
        mock.patch("serving.tasks.deployment_stop_task.delay"),
    ):
        yield


@pytest.fixture
def model(user):
    return RegisteredModelFactory(owner=user, name="shapes", slug="alice-shapes", classes=["square", "disc"])


def approved(model, number):
    return ModelVersionFactory(registered_model=model, number=number, review_status=ReviewStatus.APPROVED)


@pytest.fixture
def serving(user, model, no_tasks, django_capture_on_commit_callbacks):
    """The model's endpoint serving v1 (active), with two requests counted."""
    with django_capture_on_commit_callbacks(execute=True):
        deployment = services.deployment_create(owner=user, model_version=approved(model, 1))
        services.deployment_mark_active(deployment_id=deployment.pk, server_url="http://127.0.0.1:9", host="n", pid=1)
    services.deployment_usage_record(deployment_id=deployment.pk, latency_ms=12.0, error=False)
    services.deployment_usage_record(deployment_id=deployment.pk, latency_ms=40.0, error=True)
    deployment.refresh_from_db()
    return deployment


def section(page, start, end):
    """The part of the page from `start` to the next `end`."""
    begin = page.index(start)
    return page[begin : page.index(end, begin)]


def page_of(response):
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_list_shows_endpoints_and_a_deploy_form_of_approved_versions_only(browser, user, model, serving):
    pending = ModelVersionFactory(registered_model=model, number=2)
    rejected = ModelVersionFactory(registered_model=model, number=3, review_status=ReviewStatus.REJECTED)
    v4 = approved(model, 4)

    page = page_of(browser.get("/deployments/"))

    form = section(page, 'id="deploy-form"', "</form>")
    assert '<label for="deploy-version">Approved version</label>' in form and ">Deploy</button>" in form
    assert (
        f'<option value="{serving.model_version_id}">shapes v1' in form and f'<option value="{v4.pk}">shapes v4' in form
    )
    assert f'value="{pending.pk}"' not in form and f'value="{rejected.pk}"' not in form
    endpoints = page[page.index('id="endpoints"') :]
    assert 'href="/deployments/alice-shapes/"' in endpoints and 'class="status status-active"' in endpoints
    assert "http://testserver/api/v1/endpoints/alice-shapes/predict/" in endpoints
    assert "<td>2</td><td>1</td>" in endpoints  # requests and errors of the last hour


def test_an_endpoint_whose_first_deployment_is_starting_shows_it(browser, user, model, no_tasks):
    services.deployment_create(owner=user, model_version=approved(model, 1))

    page = page_of(browser.get("/deployments/"))

    assert 'class="status status-starting"' in page


def test_the_endpoint_page_has_the_controls_usage_and_the_playground(browser, model, serving):
    v2 = approved(model, 2)
    ModelVersionFactory(registered_model=model, number=3)  # pending: not offered

    page = page_of(browser.get("/deployments/alice-shapes/"))

    assert (
        'id="endpoint-status" class="status status-active"' in page
        and '<strong id="version-served">v1</strong>' in page
    )
    for button in ("Start", "Stop", "Roll back", "Switch"):
        assert f">{button}</button>" in page
    switch = section(page, 'id="switch-version"', "</select>")
    assert f'value="{v2.pk}" data-number="2"' in switch and "v3" not in switch
    usage = page[page.index('id="usage"') :]
    assert '<td data-usage="request_count">2</td>' in usage and '<td data-usage="error_count">1</td>' in usage
    assert '<td data-usage="p50">15.0 ms</td>' in usage or '<td data-usage="p50">15 ms</td>' in usage
    assert '<label for="playground-image">Image</label>' in page and 'type="file" id="playground-image"' in page
    assert 'data-predict-path="/api/v1/endpoints/alice-shapes/predict/"' in page
    assert '<canvas id="playground-canvas"' in page and 'id="predictions"' in page
    assert 'name="classes" value="1"> <span class="swatch" data-class-id="1"></span>disc' in page
    assert "-F image=@photo.jpg" in page and "http://testserver/api/v1/endpoints/alice-shapes/predict/" in page


def test_the_deployment_pages_need_a_login_and_are_scoped(browser, client, other_user, no_tasks):
    theirs = RegisteredModelFactory(owner=other_user, slug="bob-shapes")
    services.deployment_create(owner=other_user, model_version=approved(theirs, 1))

    assert client.get("/deployments/").status_code == 302
    assert client.get("/deployments/bob-shapes/").status_code == 302
    assert browser.get("/deployments/bob-shapes/").status_code == 404
    assert "bob-shapes" not in page_of(browser.get("/deployments/"))


@pytest.fixture
def inference_job(user, model, media_root):
    version = approved(model, 1)
    job = Job.objects.create(
        kind=JobKind.INFER,
        owner=user,
        dataset=version.dataset,
        model_version=version,
        status=JobStatus.COMPLETED,
        progress=100,
        epochs=0,
        config={"conf": 0.25, "inputs": [{"name": "a.jpg"}, {"name": "b.jpg"}]},
        finished_at=timezone.now(),
    )
    InferenceResult.objects.create(
        job=job,
        index=0,
        name="a.jpg",
        image=ContentFile(b"x", name="a.jpg"),
        width=64,
        height=48,
        predictions=[BOX, BOX],
        inference_time_ms=3.25,
    )
    InferenceResult.objects.create(
        job=job, index=1, name="b.jpg", image=ContentFile(b"x", name="b.jpg"), error="not a readable image"
    )
    return job


def test_the_inference_list_shows_jobs_and_a_form_of_approved_versions(browser, user, model, inference_job):
    pending = ModelVersionFactory(registered_model=model, number=2)

    page = page_of(browser.get("/inference/"))

    assert f'href="/inference/{inference_job.pk}/"' in page and "status-completed" in page
    assert "<td>2</td>" in page and "shapes v1" in page
    form = section(page, 'id="inference-form"', "</form>")
    assert '<label for="inference-files">Images or a zip</label>' in form and "multiple" in form
    assert f'value="{inference_job.model_version_id}"' in form and f'value="{pending.pk}"' not in form


def test_the_inference_results_page_lists_the_stored_results(browser, inference_job):
    page = page_of(browser.get(f"/inference/{inference_job.pk}/"))

    assert "2 of 2 images" in page
    first = page[page.index('data-index="0"') :]
    assert f'src="/api/v1/inference-jobs/{inference_job.pk}/results/0/image/?annotated=true"' in first
    assert "a.jpg · 2 boxes · 3.2 ms" in first or "a.jpg · 2 boxes · 3.3 ms" in first
    assert 'data-index="1"' in page and "could not be read: not a readable image" in page
    assert "Cancel</button>" not in page  # a finished job


def test_the_inference_results_are_paginated(browser, inference_job, monkeypatch):
    monkeypatch.setattr("serving.views.RESULTS_PER_PAGE", 1)

    first = page_of(browser.get(f"/inference/{inference_job.pk}/"))
    second = page_of(browser.get(f"/inference/{inference_job.pk}/?page=2"))

    assert 'data-index="0"' in first and 'data-index="1"' not in first and 'href="?page=2">Next page' in first
    assert 'data-index="1"' in second and 'data-index="0"' not in second


def test_the_inference_pages_need_a_login_and_are_scoped(browser, client, other_user, inference_job):
    assert client.get("/inference/").status_code == 302
    other = Client()
    other.force_login(other_user)
    assert other.get(f"/inference/{inference_job.pk}/").status_code == 404
    assert f"/inference/{inference_job.pk}/" not in page_of(other.get("/inference/"))
