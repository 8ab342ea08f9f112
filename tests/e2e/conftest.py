"""Shared browser fixtures: Debian's Chromium driven by Playwright (never `playwright
install`), a fresh page per test with a screenshot on failure, and a logged-in page.

    def test_something(live_server, page, logged_in_page):
        page = logged_in_page(user, password)      # the login form, for real
        page.goto(live_server.url + "/instances/")

Pages use ``live_server`` (pytest-django, so the test database and ``transactional_db``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PANEL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RESULTS_DIR = Path(__file__).resolve().parents[2] / "test-results"
# Playwright's default for expect() is 5 s; operations and polling need a little longer.
EXPECT_TIMEOUT_MS = 20_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def playwright_instance():
    """Playwright's sync API, started once. While it runs, its event loop counts as running
    in this thread, so Django would refuse the plain synchronous ORM calls tests make next
    to it: DJANGO_ALLOW_ASYNC_UNSAFE is set for exactly that long (as Playwright's own
    Django notes advise), then restored."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            yield playwright
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(playwright_instance):
    """One Chromium for the whole session."""
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def browser_context_options() -> dict:
    """Override in a test module for another viewport, colour scheme, etc."""
    return {"viewport": {"width": 1280, "height": 900}, "locale": "en-US"}


@pytest.fixture
def new_page(browser, request, browser_context_options) -> Iterator[Callable]:
    """A factory for extra pages (each in its own context, i.e. its own cookies)."""
    contexts = []

    def make(**options):
        context = browser.new_context(**{**browser_context_options, **options})
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for index, context in enumerate(contexts):
        if failed:
            _screenshot(context, request.node.nodeid, index)
        context.close()


@pytest.fixture
def page(new_page):
    """A fresh page in its own browser context; a screenshot lands in test-results/ if the
    test fails."""
    return new_page()


def _screenshot(context, nodeid: str, index: int) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-150:]
    for number, page in enumerate(context.pages):
        try:
            page.screenshot(path=str(RESULTS_DIR / f"{name}-{index}-{number}.png"), full_page=True)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"screenshot failed: {exc}")


def log_in(page, base_url: str, username: str, password: str) -> None:
    """Log in through the login form, as a person would."""
    from playwright.sync_api import expect

    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


@pytest.fixture
def logged_in_page(live_server, page) -> Callable:
    """``logged_in_page(username, password)`` → the page, logged in on the live server."""

    def login(username: str, password: str):
        log_in(page, live_server.url, username, password)
        return page

    return login


def axe_serious(page, *, context: str = "") -> list:
    """Run axe-core (bundled by axe-playwright-python) and return the serious and
    critical violations, printing every violation found."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = results.response.get("violations", [])
    for violation in violations:
        targets = [node.get("target") for node in violation.get("nodes", [])][:5]
        print(
            f"axe {context or page.url}: {violation.get('impact')} {violation.get('id')}: "
            f"{violation.get('help')} {targets}"
        )
    if not violations:
        print(f"axe {context or page.url}: no violations")
    return [v for v in violations if v.get("impact") in ("serious", "critical")]


@pytest.fixture
def axe_check() -> Callable:
    """``axe_check(page, context="list")`` → serious and critical violations (all printed)."""
    return axe_serious
