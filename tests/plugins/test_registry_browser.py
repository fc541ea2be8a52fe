"""The registry page in a real browser: Debian's Chromium, driven by Playwright, against a real
`airflow api-server` with the plugin (tests/ui_server.py).

Skips when Chromium or Playwright is missing, except under CI (tests/ci.py), where that fails
(`.ci/run` installs Chromium). The screenshot lands in test-artifacts/registry-page.png.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ci import skip_or_fail
from conftest import REPO

if TYPE_CHECKING:
    from ui_server import UiServer

pytest_plugins = ("ui_server",)
CHROMIUM = Path(os.environ.get("INTENTFLOW_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts"
# Nothing may be downloaded, and a shared 2-core machine: keep Chromium quiet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(why: str) -> None:
    skip_or_fail(f"{why}; .ci/run installs Chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_login_see_versions_and_promote_in_the_browser(ui_server: UiServer, browser: Any) -> None:
    from playwright.sync_api import expect

    from ml.registry.store import Registry

    context = browser.new_context(viewport={"width": 1300, "height": 900})
    try:
        page = context.new_page()
        # Airflow's own login form (simple auth manager), which sets the `_token` cookie.
        page.goto(f"{ui_server.url}/auth/login?next={ui_server.url}/intentflow/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "admin-pw-7")
        page.click("button[type=submit]")
        page.wait_for_function("document.cookie.includes('_token=')", timeout=60_000)

        # The page as Airflow's UI shows it: in its navigation, framed at /plugin/model-registry.
        page.goto(f"{ui_server.url}/plugin/model-registry")
        framed = page.frame_locator("iframe")
        expect(framed.locator("#v2")).to_be_visible(timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "registry-in-airflow-ui.png"))

        page.goto(f"{ui_server.url}/intentflow/")
        expect(page.locator("#v1")).to_be_visible()
        expect(page.locator("#v2")).to_be_visible()
        expect(page.locator("#metric-chart")).to_be_visible()
        assert page.locator("#metric-chart circle").count() == 2
        # The aliases the registry holds now (other tests on this server move them too).
        with Registry(ui_server.registry_url) as registry:
            aliases = {v.version: v.aliases for v in registry.list_versions("intent")}
        assert "champion" in aliases[1]
        for version, names in aliases.items():
            for name in names:
                expect(page.locator(f"#v{version} .aliases")).to_contain_text(name)
        expect(page.locator("#confusion img")).to_be_visible()
        # The PNG really loaded (served by the app, through the cookie).
        assert page.eval_on_selector("#confusion img", "img => img.naturalWidth") > 0
        # Ingest health from the real lake and reports: the day the volume gate rejected.
        state = ui_server.state
        rejected = page.locator(f"#day-{state.rejected}")
        expect(rejected).to_contain_text("rejected, not published")
        for name in state.rejected_failures:
            expect(rejected).to_contain_text(name)
        for day in state.published:
            expect(page.locator(f"#day-{day}")).to_contain_text("none")
        # A day the version trained on opens its real validation report.
        with context.expect_page() as opened:
            page.click(f"#v2 a[href$='/validation/{state.published[-1]}']", modifiers=["Shift"])
        report = opened.value
        expect(report.locator("h1")).to_have_text(f"Transcripts {state.published[-1]}: passed")
        report.close()

        # The reason is required: the browser will not submit without one.
        page.click("#v2 button[type=submit]")
        assert "done=" not in page.url
        page.fill("#v2 input[name=reason]", "v2 wins on macro-F1 in the browser")
        page.click("#v2 button[type=submit]")
        expect(page.locator("#done")).to_contain_text("promote: v2")
        expect(page.locator("#v2 .aliases")).to_contain_text("champion")
        expect(page.locator("#v1 .aliases")).not_to_contain_text("champion")
        first_audit = page.locator("#audit tr").nth(1)
        expect(first_audit).to_contain_text("promote")
        expect(first_audit).to_contain_text("admin")
        expect(first_audit).to_contain_text("v2 wins on macro-F1 in the browser")
        page.screenshot(path=str(ARTIFACTS / "registry-page.png"), full_page=True)

        # The registry agrees with the page, and recorded who and why.
        with Registry(ui_server.registry_url) as registry:
            assert registry.get("intent", alias="champion").version == 2
            last = registry.audit("intent")[-1]
        assert (last["action"], last["actor"], last["version"]) == ("promote", "admin", 2)

        # A browser without the session cookie is refused.
        anonymous = browser.new_context()
        try:
            response = anonymous.new_page().goto(f"{ui_server.url}/intentflow/")
            assert response is not None and response.status == 401
            assert "Log in to Airflow" in response.text()
        finally:
            anonymous.close()
    finally:
        context.close()
        with Registry(ui_server.registry_url) as registry:  # leave v1 champion for other tests
            registry.set_alias("intent", "champion", 1, actor="test", reason="reset after test")
