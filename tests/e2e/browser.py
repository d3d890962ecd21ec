"""Debian's Chromium driven by Playwright, for the dashboard tests (no browser is ever downloaded)."""

import os
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def chromium_missing():
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is missing: it is in requirements-dev.txt"
    return None


@contextmanager
def chromium(*, width=1280, height=900):
    """A fresh browser context; pages it opens fail the test on an uncaught script error."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            context.set_default_timeout(20_000)
            yield context
        finally:
            browser.close()


def watched_page(context):
    """A page that records script errors and failed responses (4xx/5xx on static files or pages)."""
    page = context.new_page()
    page.script_errors = []
    page.failed_responses = []
    page.accessibility_problems = []
    page.on("pageerror", lambda error: page.script_errors.append(str(error)))

    def check(response):
        if _bad(response):
            page.failed_responses.append(f"{response.status} {response.url}")

    page.on("response", check)
    return page


def _bad(response):
    return response.status >= 500 or ("/static/" in response.url and response.status >= 400)


def sign_in(page, base_url, username, password):
    page.goto(f"{base_url}/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # installed from npm by scripts/ensure-assets.sh


def accessibility_problems(page):
    """Serious and critical WCAG 2 A/AA violations that axe-core finds on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}}))
            .violations.filter((v) => ["serious", "critical"].includes(v.impact))
            .map((v) => `${v.id}: ${v.help} (${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")})`)"""
    )
    return [f"{page.url}: {violation}" for violation in violations]


def screenshot(page, name, *, audit=True):
    """Save the page as a PNG; with `audit`, also record axe-core's findings on `page.accessibility_problems`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if audit and hasattr(page, "accessibility_problems"):
        page.accessibility_problems.extend(accessibility_problems(page))
    return path
