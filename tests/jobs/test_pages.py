"""The training pages: the list with status filters, the new-training form, and one job's live page."""

import json
import re

import pytest

from datasets.choices import DatasetStatus
from jobs.choices import EventKind, JobStatus
from jobs.models import JobEvent
from models_registry.choices import ReviewStatus
from models_registry.models import BaseModel
from tests.factories import DatasetFactory, ModelVersionFactory, TrainingJobFactory, ValidationJobFactory

pytestmark = [pytest.mark.django_db]


def epoch_event(job, epoch, map50, **metrics):
    return JobEvent.objects.create(
        job=job,
        kind=EventKind.EPOCH,
        attempt=1,
        payload={
            "epoch": epoch,
            "epochs": job.epochs,
            "metrics": {"train/box_loss": 1.5 - epoch / 10, "mAP50": map50, "mAP50-95": map50 / 2, **metrics},
            "epoch_seconds": 2.5,
        },
    )


def embedded(page, element_id):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', page, re.S)
    assert match, f"no {element_id} in the page"
    return json.loads(match.group(1))


def rows_of(page):
    return re.findall(r'<tr data-job="(\d+)">', page)


def test_every_training_page_needs_a_login(client, user):
    job = TrainingJobFactory(owner=user)

    for url in ("/training/", "/training/new/", f"/training/{job.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_list_shows_only_the_users_training_jobs_with_their_best_map(browser, user, other_user):
    mine = TrainingJobFactory(owner=user, status=JobStatus.RUNNING, epoch=2, epochs=5)
    epoch_event(mine, 1, 0.41)
    epoch_event(mine, 2, 0.37)  # the best is not the latest
    theirs = TrainingJobFactory(owner=other_user)

    page = browser.get("/training/").content.decode()

    assert rows_of(page) == [str(mine.pk)]
    assert f'href="/training/{mine.pk}/"' in page and f"/training/{theirs.pk}/" not in page
    assert mine.dataset.name in page and theirs.dataset.name not in page
    assert "2 / 5" in page and "0.410" in page
    assert '<span class="status status-running">Running</span>' in page
    assert 'href="/training/new/"' in page and "New training" in page
    assert '<th scope="col">best mAP50</th>' in page


def test_the_list_filters_by_status(browser, user):
    queued = TrainingJobFactory(owner=user, status=JobStatus.QUEUED)
    running = TrainingJobFactory(owner=user, status=JobStatus.RUNNING)
    done = TrainingJobFactory(owner=user, status=JobStatus.COMPLETED)
    failed = TrainingJobFactory(owner=user, status=JobStatus.FAILED)

    def listed(query):
        return set(rows_of(browser.get(f"/training/{query}").content.decode()))

    assert listed("") == {str(job.pk) for job in (queued, running, done, failed)}
    assert listed("?status=completed") == {str(done.pk)}
    assert listed("?status=failed") == {str(failed.pk)}
    assert listed("?status=queued") == {str(queued.pk)}
    assert listed("?status=running") == {str(queued.pk), str(running.pk)}  # not finished yet
    assert listed("?status=cancelled") == set()
    assert listed("?status=bogus") == listed("")
    page = browser.get("/training/?status=failed").content.decode()
    assert '<a href="/training/?status=failed" aria-current="page">failed</a>' in page


def test_the_form_lists_only_the_users_ready_data_sets_with_defaults_and_help(browser, user, other_user):
    ready = DatasetFactory(owner=user, name="shapes")
    DatasetFactory(owner=user, name="still-checking", status=DatasetStatus.VALIDATING)
    DatasetFactory(owner=other_user, name="someone-elses")

    page = browser.get("/training/new/").content.decode()

    options = re.search(r'<select id="train-dataset".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="(\d+)"', options) == [str(ready.pk)]
    assert "still-checking" not in page and "someone-elses" not in page
    # Every field a user fills in is labelled and explained in one line.
    for name in ("dataset", "model", "epochs", "imgsz", "batch", "device", "patience", "registered-model"):
        assert f'<label for="train-{name}">' in page
    assert len(re.findall(r'class="field-help"', page)) >= 15
    assert "a multiple of 32" in page
    # The API's own defaults.
    assert 'id="train-epochs" name="epochs" type="number" min="1" max="1000" step="1" value="50"' in page
    assert 'value="640"' in page and "<option selected>yolo11n</option>" in page
    assert 'id="train-validate-after" name="validate_after" type="checkbox" role="switch" checked' in page
    assert '<button type="submit" id="training-submit">Start training</button>' in page
    assert 'Portal.api("/api/v1/training-jobs/", { method: "POST", json: payload() })' in page


def test_the_form_preselects_the_data_set_of_the_query_and_offers_starting_weights(
    browser, user, other_user, staff_user
):
    DatasetFactory(owner=user, name="first")
    second = DatasetFactory(owner=user, name="second")
    theirs = DatasetFactory(owner=other_user)
    BaseModel.objects.create(name="coco-n", weights="base-models/c.pt", sha256="b" * 64, uploaded_by=staff_user)
    approved = ModelVersionFactory(registered_model__owner=user, review_status=ReviewStatus.APPROVED)
    ModelVersionFactory(registered_model__owner=user)  # pending review: cannot be fine-tuned

    page = browser.get(f"/training/new/?dataset={second.pk}").content.decode()
    assert re.findall(r'<option value="(\d+)" data-name="[^"]*" selected>', page) == [str(second.pk)]
    assert '<option value="' in page and 'data-kind="base_model">coco-n</option>' in page
    starting = re.search(r'<select id="train-base-model".*?</select>', page, re.S).group(0)
    assert re.findall(r'data-kind="fine_tune_from"', starting) == ['data-kind="fine_tune_from"']
    assert f'value="{approved.pk}" data-kind="fine_tune_from"' in starting

    for query in (f"?dataset={theirs.pk}", "?dataset=abc"):
        page = browser.get(f"/training/new/{query}").content.decode()
        assert " selected>" not in re.search(r'<select id="train-dataset".*?</select>', page, re.S).group(0)


def test_the_form_without_a_ready_data_set_points_to_the_upload(browser, user):
    DatasetFactory(owner=user, status=DatasetStatus.VALIDATING)

    page = browser.get("/training/new/").content.decode()

    assert 'id="training-form"' not in page
    assert 'href="/datasets/#upload"' in page and "still being checked" in page


def test_the_detail_page_of_another_users_job_is_not_found(browser, other_user):
    theirs = TrainingJobFactory(owner=other_user)

    assert browser.get(f"/training/{theirs.pk}/").status_code == 404
    assert browser.get("/training/999999/").status_code == 404


def test_the_detail_page_embeds_the_epoch_history_and_the_live_state(browser, user):
    job = TrainingJobFactory(owner=user, status=JobStatus.RUNNING, epoch=2, epochs=3, attempt=2, progress=70.0)
    epoch_event(job, 1, 0.2)
    epoch_event(job, 2, 0.3)
    JobEvent.objects.create(job=job, kind=EventKind.RESUMED, attempt=2, payload={"epoch": 1, "attempt": 2})
    retrained = epoch_event(job, 2, 0.35)  # the resumed attempt's epoch 2 replaces the first one's
    log = JobEvent.objects.create(job=job, kind=EventKind.LOG, attempt=2, payload={"lines": ["epoch 2/3: mAP50=0.35"]})

    response = browser.get(f"/training/{job.pk}/")
    page = response.content.decode()

    history = embedded(page, "epoch-history")
    assert [(row["epoch"], row["mAP50"]) for row in history] == [(1, 0.2), (2, 0.35)]
    assert history[1]["seconds"] == 2.5 and history[1]["train/box_loss"] == pytest.approx(1.3)
    state = embedded(page, "training-state")
    assert state["last_event_id"] == log.pk > retrained.pk
    assert state["status"] == "running" and state["attempt"] == 2 and not state["terminal"]
    # The elements a browser test and the live script use.
    assert '<span id="job-status" class="status status-running" role="status">Running</span>' in page
    assert '<progress id="epoch-progress" max="100" value="70.00" aria-label="Training progress"' in page
    assert '<span class="value" id="epoch-text">epoch 2 of 3</span>' in page
    assert 'id="loss-chart" role="img"' in page and 'id="map-chart" role="img"' in page
    assert 'data-points="2"' in page
    assert "[attempt 2] epoch 2/3: mAP50=0.35" in page  # the log tail
    assert "<td>2</td><td>1.3000</td><td></td><td>0.3500</td><td>0.1750</td>" in page  # the text fallback
    assert ">Cancel training</button>" in page and 'id="retry-button" hidden' in page
    assert "/static/vendor/chart.js/chart.umd.min.js" in page and "/static/portal/training.js" in page
    assert "data-live-state" in page


def test_a_completed_job_links_its_model_version_and_validation(browser, user):
    job = TrainingJobFactory(owner=user, status=JobStatus.COMPLETED, epoch=3, progress=100.0)
    version = ModelVersionFactory(registered_model__owner=user, training_job=job, dataset=job.dataset)
    validation = ValidationJobFactory(owner=user, model_version=version, dataset=job.dataset)

    page = browser.get(f"/training/{job.pk}/").content.decode()

    link = f'<a id="model-version-link" href="/models/{version.registered_model_id}/">'
    assert link in page and f"{version.registered_model.name} v{version.number}" in page
    assert f'href="/api/v1/validation-jobs/{validation.pk}/"' in page
    assert embedded(page, "validation-job") == validation.pk  # the page follows it until it ends
    assert 'id="cancel-button" class="secondary" hidden' in page and 'id="retry-button" >' not in page


def test_a_failed_job_offers_a_retry_and_shows_its_error(browser, user):
    job = TrainingJobFactory(owner=user, status=JobStatus.FAILED, error="CUDA out of memory")

    page = browser.get(f"/training/{job.pk}/").content.decode()

    assert "CUDA out of memory" in page
    assert '<button type="button" id="retry-button" >Retry training</button>' in page
    assert 'id="cancel-button" class="secondary" hidden' in page
    assert embedded(page, "training-state")["terminal"] is True
