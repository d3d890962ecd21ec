"""The dashboard in Debian's Chromium. Signing in and out, the assets from npm, the accessibility audit; and the
whole flow through the dashboard only: upload a data set and read its report, start a training and watch it live
(no reload), see the version wait for review, a reviewer approves it in the admin, deploy it, use the playground,
run an inference job. Every page is saved as a screenshot."""

import contextlib

import pytest
import requests
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests import datagen
from tests.e2e.browser import chromium, chromium_missing, screenshot, sign_in, watched_page
from tests.e2e.stack import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TRAINING_TIMEOUT_MS = 600_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    problem = chromium_missing()
    if problem:
        pytest.fail(problem)  # a missing browser is a broken install, not a reason to skip
    with running_stack(tmp_path_factory.mktemp("dashboard-flow")) as running:
        yield running


def points(page, canvas_id):
    return int(page.locator(f"#{canvas_id}").get_attribute("data-points") or 0)


def nav(page, name):
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def open_panel(page, selector):
    """Open a folded <details> form the way a user does (a click on its summary), unless it is open."""
    if not page.locator(selector).evaluate("element => element.open"):
        page.locator(f"{selector} summary").click()


WIDER_THAN_SCREEN = """() => [...document.querySelectorAll("body *")]
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && e.offsetParent !== null)
  .slice(0, 4).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} ${e.outerHTML.slice(0, 80)}`)"""


def check_narrow(page, name):
    """On a phone-sized screen nothing is wider than the screen; saved as a screenshot too."""
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    # Charts redraw for the new size on the next frames: give them a moment to fit (measured just below).
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function("document.documentElement.scrollWidth <= window.innerWidth", timeout=3000)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    culprits = page.evaluate(WIDER_THAN_SCREEN)
    screenshot(page, f"{name}-narrow", audit=False)
    page.set_viewport_size(size)
    assert overflow <= 0, f"{name} is {overflow}px wider than a 390px screen: {culprits}"


def test_a_new_user_goes_from_data_set_to_predictions_in_the_browser(stack, tmp_path):
    archive = tmp_path / "shapes.zip"
    archive.write_bytes(datagen.detection_zip(train=16, val=4, size=64, seed=11))
    probe = tmp_path / "probe.jpg"
    probe.write_bytes(datagen.sample_image_bytes(size=64, seed=5))
    batch = [tmp_path / f"batch-{i}.jpg" for i in range(3)]
    for i, path in enumerate(batch):
        path.write_bytes(datagen.sample_image_bytes(size=64, seed=20 + i))

    with chromium() as context:
        page = watched_page(context)
        sign_in(page, stack.url, "owner", "owner-pw-123")

        # 1. Data sets: upload with a progress bar, then the report and the gallery.
        nav(page, "Data sets")
        open_panel(page, "#upload-panel")
        page.get_by_label("Name", exact=True).fill("shapes")
        page.get_by_label("Zip archive").set_input_files(str(archive))
        screenshot(page, "01-datasets-upload-form")
        page.get_by_role("button", name="Upload", exact=True).click()
        page.wait_for_url(lambda url: "/datasets/" in url and url.rstrip("/").split("/")[-1].isdigit())
        page.locator("#status", has_text="ready").wait_for(timeout=120_000)
        assert page.locator("#report").is_visible()
        page.locator("#gallery img").first.wait_for()
        screenshot(page, "02-dataset-detail")
        check_narrow(page, "02-dataset-detail")
        nav(page, "Data sets")
        assert page.get_by_role("link", name="shapes", exact=True).is_visible()
        screenshot(page, "03-datasets-list")

        # 2. Training: the form has defaults and help; the job page updates live.
        page.get_by_role("link", name="shapes", exact=True).click()
        page.get_by_role("button", name="Train a model on this data set", exact=True).click()
        assert page.get_by_label("Data set").input_value() != ""
        page.get_by_label("Epochs").fill("4")
        page.get_by_label("Image size").fill("64")
        page.get_by_label("Batch size").fill("8")
        page.get_by_label("Device", exact=True).fill("cpu")
        page.get_by_label("Registered model name").fill("shapes-detector")
        page.get_by_text("Advanced settings").click()
        page.get_by_label("Data loader workers").fill("0")
        screenshot(page, "04-training-new")
        page.get_by_role("button", name="Start training", exact=True).click()
        page.wait_for_url(lambda url: "/training/" in url and url.rstrip("/").split("/")[-1].isdigit())
        job_url = page.url
        page.evaluate("window.__stillTheSamePage = true")  # gone if the page reloads

        progress = page.get_by_role("progressbar", name="Training progress")
        page.wait_for_function(
            "Number(document.getElementById('loss-chart').dataset.points) >= 1", timeout=TRAINING_TIMEOUT_MS
        )
        first_points = points(page, "loss-chart")
        first_progress = float(progress.get_attribute("value") or 0)
        screenshot(page, "05-training-running")
        page.wait_for_function(
            f"Number(document.getElementById('loss-chart').dataset.points) > {first_points}",
            timeout=TRAINING_TIMEOUT_MS,
        )
        assert float(progress.get_attribute("value") or 0) > first_progress
        assert points(page, "map-chart") > first_points - 1
        page.locator("#job-status", has_text="Completed").wait_for(timeout=TRAINING_TIMEOUT_MS)
        assert page.evaluate("window.__stillTheSamePage") is True, "the page reloaded"
        assert points(page, "loss-chart") == 4
        assert page.locator("#heartbeat").inner_text().strip() != ""
        assert "epoch" in page.locator("#log-tail").inner_text().lower()
        page.locator("#model-version-link").wait_for()
        screenshot(page, "06-training-completed")
        check_narrow(page, "06-training-completed")
        nav(page, "Training")
        assert page.locator(f"a[href='{job_url.removeprefix(stack.url)}']").count() >= 1
        screenshot(page, "07-training-list")

        # 3. The new version waits for a reviewer.
        page.goto(job_url)
        page.locator("#model-version-link").click()
        assert page.locator("[data-review-status=pending_review]").first.is_visible()
        screenshot(page, "08-model-pending-review")
        model_url = page.url

        # 4. A reviewer approves it in the admin, on the evidence page.
        version_id = api_version_id(stack, "shapes-detector")
        reviewer = watched_page(context.browser.new_context())
        reviewer.goto(f"{stack.url}/admin/login/")
        reviewer.get_by_label("Username").fill("reviewer")
        reviewer.get_by_label("Password").fill("reviewer-pw-123")
        reviewer.get_by_role("button", name="Log in", exact=True).click()
        reviewer.goto(f"{stack.url}/admin/models_registry/modelversion/{version_id}/change/")
        reviewer.get_by_label("Note").fill("Looks right on the validation gallery.")
        reviewer.get_by_role("button", name="Approve", exact=True).click()
        reviewer.locator(".messagelist .success", has_text="Approved").wait_for()
        screenshot(reviewer, "09-admin-approved")

        # 5. The owner sees the approval and the reviewer's note, then compares and deploys.
        page.goto(model_url)
        assert page.locator("[data-review-status=approved]").first.is_visible()
        assert page.get_by_text("Looks right on the validation gallery.").first.is_visible()
        screenshot(page, "10-model-approved")
        nav(page, "Models")
        screenshot(page, "11-models-list")

        nav(page, "Deployments")
        page.get_by_label("Approved version").select_option(index=0)
        screenshot(page, "12-deployments-list")
        page.get_by_role("button", name="Deploy", exact=True).click()
        page.wait_for_url(lambda url: "/deployments/" in url and not url.endswith("/deployments/"))
        page.locator("#endpoint-status", has_text="Active").wait_for(timeout=180_000)

        # 6. The playground: an image in, boxes drawn with classes and confidences.
        page.get_by_label("Image", exact=True).set_input_files(str(probe))
        page.get_by_label("Confidence threshold").fill("0.0001")
        page.get_by_role("button", name="Predict", exact=True).click()
        page.wait_for_function("Number(document.getElementById('playground-canvas').dataset.boxes) > 0", timeout=60_000)
        rows = page.locator("#predictions tbody tr")
        assert rows.count() > 0
        assert rows.first.locator("td").first.inner_text() in {"square", "disc"}
        screenshot(page, "13-deployment-playground")
        check_narrow(page, "13-deployment-playground")

        # 7. An inference job over several images; its results gallery.
        nav(page, "Inference")
        open_panel(page, "#inference-panel")
        page.get_by_label("Approved version").select_option(index=0)
        page.get_by_label("Images or a zip").set_input_files([str(path) for path in batch])
        page.get_by_label("Confidence threshold").fill("0.0001")
        page.get_by_role("button", name="Start inference", exact=True).click()
        try:
            page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1].isdigit(), timeout=60_000)
        except PlaywrightTimeout:
            screenshot(page, "failure-inference", audit=False)
            raise AssertionError(f"no inference job page: {page.locator('#inference-status').inner_text()}") from None
        page.locator("#job-status", has_text="completed").wait_for(timeout=300_000)
        page.locator("#results figure").nth(2).wait_for()
        assert page.locator("#results figure").count() == 3
        screenshot(page, "14-inference-results")
        nav(page, "Inference")
        screenshot(page, "15-inference-list")
        page.goto(f"{stack.url}/")
        screenshot(page, "16-home")

        assert page.accessibility_problems == [], "\n".join(page.accessibility_problems)
        assert page.script_errors == [], page.script_errors
        assert page.failed_responses == [], page.failed_responses
        assert reviewer.script_errors == []


def api_version_id(stack, model_name):
    """The newest version of a registered model (a lookup for the admin's URL, not part of the user's flow)."""
    token = requests.post(
        f"{stack.url}/api/v1/auth/token/", json={"username": "owner", "password": "owner-pw-123"}
    ).json()["token"]
    versions = requests.get(f"{stack.url}/api/v1/model-versions/", headers={"Authorization": f"Token {token}"}).json()[
        "results"
    ]
    return next(v["id"] for v in versions if v["registered_model"] == model_name)


def test_sign_in_home_and_sign_out(stack):
    with chromium() as context:
        page = watched_page(context)
        page.goto(f"{stack.url}/training/")
        assert "/login/" in page.url  # the dashboard needs a session

        page.get_by_label("User name").fill("owner")
        page.get_by_label("Password").fill("wrong-password")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_role("alert").first.inner_text().startswith("That user name and password")

        sign_in(page, stack.url, "owner", "owner-pw-123")
        assert page.get_by_role("heading", level=1).inner_text() == "Hello, owner"
        # Pico CSS (from npm) is applied: buttons get its primary colour, not the browser's grey.
        background = page.get_by_role("button", name="Upload a data set").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert background not in ("rgba(0, 0, 0, 0)", "rgb(239, 239, 239)")
        screenshot(page, "00-home")

        page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing wider than the screen
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        screenshot(page, "00-home-narrow")

        page.get_by_role("button", name="Sign out owner").click()
        page.wait_for_url(lambda url: "/login/" in url)
        page.goto(f"{stack.url}/")
        assert "/login/" in page.url
        assert page.script_errors == [] and page.failed_responses == []
        assert page.accessibility_problems == [], page.accessibility_problems


def test_the_accessibility_audit_finds_what_it_exists_to_find():
    """The dashboard tests assert axe-core finds nothing: here it must find the four planted problems."""
    from tests.e2e.browser import accessibility_problems

    with chromium() as context:
        page = context.new_page()
        page.set_content("<html lang=en><body><main><img src=x.png><input><button></button></main></body></html>")
        found = " ".join(accessibility_problems(page))

    for rule in ("image-alt", "label", "button-name", "document-title"):
        assert rule in found, found
