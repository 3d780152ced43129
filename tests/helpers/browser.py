"""A real browser for the UI's tests: Debian's Chromium, headless, driven by Playwright, kept off the network.

Playwright's Python package drives the system's ``/usr/bin/chromium`` (installed with apt-get
when absent, as RabbitMQ is); Playwright never downloads a browser of its own. Each launch gets
a fresh profile (user-data directory) of its own, and each page a fresh context: cookies,
storage and cache start empty. Every request to a host other than 127.0.0.1 or localhost is
aborted, so a page that reached for a CDN would break in the test as it would at an offline site.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Route, sync_playwright

from devstack.processes import ensure_commands

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--no-sandbox",  # the tests run as root, where Chromium's own sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
PROJECT = Path(__file__).resolve().parents[2]
# Where the tests save their screenshots: .state/screenshots, untracked, unless QUERN_SCREENSHOTS names
# another directory (`just screenshots` points it at docs/screenshots, the copies the docs show).
SCREENSHOTS = Path(os.environ.get("QUERN_SCREENSHOTS", PROJECT / ".state" / "screenshots"))


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt-get (as root) when absent."""
    ensure_commands({"chromium": "chromium"})
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing after installing chromium"
    return CHROMIUM


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless system Chromium, closed at the end; open pages with ``new_page``."""
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), headless=True, args=list(FLAGS))
        try:
            yield browser
        finally:
            browser.close()


def local_only(blocked: list[str]) -> Callable[[Route], None]:
    """A route handler that lets requests to this machine through and aborts (and notes) every other."""

    def handle(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort("blockedbyclient")

    return handle


@contextmanager
def new_page(browser: Browser, base_url: str, *, blocked: list[str] | None = None) -> Iterator[Page]:
    """A page of ``base_url`` in a fresh context (no cookies), its off-machine requests blocked into ``blocked``."""
    context = browser.new_context(base_url=base_url, accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.route("**/*", local_only([] if blocked is None else blocked))
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


AXE = Path(__file__).parent / "axe" / "axe.min.js"
# WCAG 2 A and AA: labels, names, contrast, structure, keyboard focusability.
AXE_RUN = (
    "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']})"
    ".then(r => r.violations.map(v => [v.id, v.impact, v.nodes.length, v.help]))"
)


@contextmanager
def axe_page(browser: Browser, base_url: str) -> Iterator[Page]:
    """A page of ``base_url`` into which the test may inject axe-core: its CSP (script-src 'self') would refuse it."""
    context = browser.new_context(base_url=base_url, bypass_csp=True, viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def axe_violations(page: Page) -> list[list[Any]]:
    """What axe-core finds on the page as it stands: ``[rule, impact, nodes, help]`` per WCAG 2 A/AA violation."""
    page.add_script_tag(path=str(AXE))
    found: list[list[Any]] = page.evaluate(AXE_RUN)
    return found


def log_in_page(page: Page, username: str, password: str) -> None:
    """Sign in through the login form, as a person would; ends on the jobs page."""
    page.goto("/ui/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/jobs")


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as <name>.png in ``SCREENSHOTS``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sha256_of(path: Path) -> str:
    """The SHA-256 of a downloaded file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def watch(page: Page, probe: str, until: Callable[[list[object]], bool], *, timeout: float = 60) -> list[object]:
    """The distinct values a JS expression took, polled every 50 ms, until ``until`` holds of them."""
    seen: list[object] = []
    deadline = time.monotonic() + timeout
    while not until(seen):
        assert time.monotonic() < deadline, f"still waiting; saw {seen}"
        value = page.evaluate(probe)
        if not seen or seen[-1] != value:
            seen.append(value)
        page.wait_for_timeout(50)
    return seen
