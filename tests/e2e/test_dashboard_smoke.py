"""The dashboard in Debian's Chromium: signing in and out, the home page, its assets from npm."""

import pytest

from tests.e2e.browser import chromium, chromium_missing, screenshot, sign_in, watched_page
from tests.e2e.stack import running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    problem = chromium_missing()
    if problem:
        pytest.fail(problem)  # a missing browser is a broken install, not a reason to skip
    with running_stack(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


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
