"""The registry page in a real browser: Debian's Chromium, driven by Playwright, against a real
`airflow api-server` with the plugin (tests/ui_server.py), on versions real retrains made.

Skips when Chromium or Playwright is missing, except under CI (tests/ci.py), where that fails
(`.ci/run` installs Chromium). Screenshots land in test-artifacts/ (docs/registry.md lists
them): the page and the comparison at 1280x800 and 1920x1080, light and dark; the production
section and a day's monitoring report at 1280x800, light and dark.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from ci import skip_or_fail
from conftest import REPO

if TYPE_CHECKING:
    from production_state import Production
    from ui_server import UiServer

pytest_plugins = ("ui_server", "page_fixtures")
CHROMIUM = Path(os.environ.get("INTENTFLOW_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts"
SIZES = {"1280x800": (1280, 800), "1920x1080": (1920, 1080)}
# WCAG 2.1 AA: 4.5:1 for text, 3:1 for large text (18.66px bold / 24px).
CONTRAST_JS = """() => {
  const ctx = document.createElement('canvas').getContext('2d', {willReadFrequently: true});
  const rgba = (c) => { ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000'; ctx.fillStyle = c;
    ctx.fillRect(0, 0, 1, 1); return Array.from(ctx.getImageData(0, 0, 1, 1).data); };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (; el; el = el.parentElement) {
    const c = getComputedStyle(el).backgroundColor; const v = rgba(c);
    if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent' && v[3] > 0) return v; }
    return rgba(getComputedStyle(document.body).backgroundColor); };
  const failures = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    if (!own || style.visibility === 'hidden' || el.closest('[hidden], details:not([open]) > :not(summary), .visually-hidden')
        || el.getClientRects().length === 0 || style.color === 'transparent'
        || el.closest('table.heatmap td')) continue;
    const fg = lum(rgba(style.color)), bg = lum(background(el));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight) >= 700;
    const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < needed) failures.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return failures;
}"""
# Every form control has a name a screen reader reads out (label, aria-label or text).
UNLABELLED_JS = """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, button, a[href]'))
  .filter((el) => el.getClientRects().length > 0)
  .filter((el) => !((el.labels && el.labels.length) || el.getAttribute('aria-label')
    || el.textContent.trim() || el.getAttribute('title')))
  .map((el) => el.outerHTML.slice(0, 80))"""
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
        # Inside Airflow the page takes Airflow's theme (its own switch is hidden) and follows
        # when Airflow's changes.
        expect(framed.locator("#theme-toggle")).to_be_hidden()
        page.evaluate(
            "() => { const c = document.documentElement.classList;"
            " c.remove('light'); c.add('dark'); }"
        )
        expect(framed.locator("html")).to_have_class(re.compile(r"\bdark\b"))
        page.screenshot(path=str(ARTIFACTS / "registry-in-airflow-ui-dark.png"))

        page.goto(f"{ui_server.url}/intentflow/")
        expect(page.locator("#v1")).to_be_visible()
        expect(page.locator("#v2")).to_be_visible()
        # The trend is drawn by Chart.js (the vendored file: nothing fetched elsewhere), one
        # point per version, the value on hover.
        expect(page.locator("#trend-chart")).to_be_visible()
        page.wait_for_function("document.getElementById('trend-chart').dataset.points === '2'")
        assert page.evaluate("typeof Chart") == "function"
        _hover_last_point(page)
        tooltip = page.evaluate(
            "() => { const t = Chart.getChart('trend-chart').tooltip;"
            " return t.opacity ? [t.title.join(' '), t.body.map(b => b.lines.join(' ')).join(' ')] : null; }"
        )
        assert tooltip is not None and tooltip[0].startswith("v2") and "macro_f1: " in tooltip[1]
        assert tooltip[1].endswith("%")  # a rate, as a percentage
        page.select_option("#trend-axis", "time")
        page.wait_for_function(
            "Chart.getChart('trend-chart').options.scales.x.afterBuildTicks === undefined"
        )
        # The aliases the registry holds now (other tests on this server move them too).
        with Registry(ui_server.registry_url) as registry:
            aliases = {v.version: v.aliases for v in registry.list_versions("intent")}
        assert "champion" in aliases[1]
        for version, names in aliases.items():
            for name in names:
                expect(page.locator(f"#v{version} .aliases")).to_contain_text(name)
        expect(page.locator("#confusion table.heatmap")).to_be_visible()
        expect(page.locator("#confusion ol.confusions li").first).to_contain_text("→")
        # Ingest health from the real lake and reports: the day the volume gate rejected.
        state = ui_server.state
        rejected = page.locator(f"#day-{state.rejected}")
        expect(rejected).to_contain_text("rejected, not published")
        for name in state.rejected_failures:
            expect(rejected).to_contain_text(name)
        for day in state.published:
            expect(page.locator(f"#day-{day}")).to_contain_text("none")
        # A day the version trained on opens its real validation report (Data Docs).
        with context.expect_page() as opened:
            page.click(f"#links a[href$='/validation/{state.published[-1]}']", modifiers=["Shift"])
        report = opened.value
        expect(report.locator("h1")).to_have_text(f"Transcripts {state.published[-1]}: passed")
        report.close()
        # The model card, rendered, one click away.
        page.click("#links a:text('model card')")
        expect(page.locator("#model-card h1")).to_be_visible()
        page.go_back()

        # The reason is required: the browser will not submit without one.
        page.click("#v2 button[type=submit]")
        assert "done=" not in page.url
        page.fill("#v2 input[name=reason]", "v2 wins on macro-F1 in the browser")
        page.click("#v2 button[type=submit]")
        expect(page.locator("#done")).to_contain_text("promote: v2")
        expect(page.locator("#v2 .aliases")).to_contain_text("champion")
        expect(page.locator("#v1 .aliases")).not_to_contain_text("champion")
        first_audit = page.locator("#audit tbody tr").first
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


def _hover_last_point(page: Any) -> None:
    """Move the mouse onto the chart's last point (Chart.js draws on a canvas: no element),
    the chart scrolled into view first (the production section above may push it down)."""
    page.locator("#trend-chart").scroll_into_view_if_needed()
    x, y = page.evaluate(
        "() => { const c = Chart.getChart('trend-chart'); const m = c.getDatasetMeta(0).data;"
        " const p = m[m.length - 1]; const r = c.canvas.getBoundingClientRect();"
        " return [r.left + p.x, r.top + p.y]; }"
    )
    page.mouse.move(x, y)
    page.wait_for_function("Chart.getChart('trend-chart').tooltip.opacity > 0")


def _login(browser: Any, url: str, **options: Any) -> Any:
    context = browser.new_context(**options)
    page = context.new_page()
    page.goto(f"{url}/auth/login?next={url}/intentflow/")
    page.fill("input[name=username]", "admin")  # who sees the promotion forms too
    page.fill("input[name=password]", "admin-pw-7")
    page.click("button[type=submit]")
    page.wait_for_function("document.cookie.includes('_token=')", timeout=60_000)
    return context


def _no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{page.url}: {width[0]} px wide in a {width[1]} px window"


def _accessible(page: Any) -> None:
    """Labels, contrast (WCAG AA) and a visible keyboard focus."""
    assert page.evaluate(UNLABELLED_JS) == []
    assert page.evaluate(CONTRAST_JS) == []
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => { const e = document.activeElement; const s = getComputedStyle(e);"
        " return [e.tagName, s.outlineStyle, parseFloat(s.outlineWidth)]; }"
    )
    assert focused[0] in ("A", "BUTTON", "SELECT", "INPUT") and focused[1] != "none", focused
    assert focused[2] >= 2, focused


def test_compare_two_real_versions_in_the_browser(ui_server: UiServer, browser: Any) -> None:
    """v1 and v2 of intent (made by the retrain steps on the real pipeline state), compared
    from the versions table's form; both pages at 1280x800 and 1920x1080, light and dark,
    without horizontal scrolling, checked for labels, contrast and keyboard focus."""
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        for size, (width, height) in SIZES.items():
            context = _login(
                browser,
                ui_server.url,
                viewport={"width": width, "height": height},
                color_scheme=scheme,
            )
            try:
                page = context.new_page()
                page.goto(f"{ui_server.url}/intentflow/?model=intent")
                expect(page.locator("#versions")).to_be_visible()
                assert page.evaluate("document.documentElement.classList.contains('dark')") == (
                    scheme == "dark"
                )
                page.wait_for_function("document.getElementById('trend-chart').dataset.points")
                _no_horizontal_scroll(page)
                page.screenshot(
                    path=str(ARTIFACTS / f"registry-page-{size}-{scheme}.png"), full_page=True
                )
                _accessible(page)
                # Compare from the form: baseline v1 (champion), compared with v2.
                page.select_option("#cmp-a", "1")
                page.select_option("#cmp-b", "2")
                page.click("#compare-form button[type=submit]")
                expect(page.locator("#cmp-h")).to_contain_text("v2 compared with v1")
                expect(page.locator("#m-macro_f1 .delta")).to_be_visible()
                expect(page.locator("#class-changes tr.class-change").first).to_be_visible()
                expect(page.locator("#confusions-v2 li").first).to_contain_text("→")
                expect(page.locator("#heatmap-v2 table.heatmap")).to_be_visible()
                _no_horizontal_scroll(page)
                page.screenshot(
                    path=str(ARTIFACTS / f"registry-compare-{size}-{scheme}.png"), full_page=True
                )
                _accessible(page)
            finally:
                context.close()


def _csp_violations(found: list[str]) -> Any:
    """A console listener keeping the messages of blocked content (CSP violations)."""

    def listen(message: Any) -> None:
        if "Content Security Policy" in message.text:
            found.append(message.text)

    return listen


def test_production_section_and_report_in_the_browser(
    ui_server: UiServer, browser: Any, production: Production
) -> None:
    """The champion's production week (tests/production_state.py: predictions logged through
    the prediction log, feedback through its store, the monitoring function's rows and
    reports) on the page, light and dark at 1280x800: every chart drawn, the drifted day's
    checks, and its report opened from the link under the report's own CSP."""
    from playwright.sync_api import expect
    from production_state import MODEL, monitor

    rows = monitor(ui_server.state, production, ui_server.registry_url)
    shifted = production.shifted.isoformat()
    assert next(r for r in rows if r["day"] == shifted)["status"] == "drift"
    ARTIFACTS.mkdir(exist_ok=True)
    for scheme in ("light", "dark"):
        context = _login(
            browser, ui_server.url, viewport={"width": 1280, "height": 800}, color_scheme=scheme
        )
        try:
            page = context.new_page()
            violations: list[str] = []
            page.on("console", _csp_violations(violations))
            page.goto(f"{ui_server.url}/intentflow/?model={MODEL}&day={shifted}#production")
            section = page.locator("#production")
            expect(section).to_be_visible()
            for chart in ("traffic", "confidence", "mix", "histogram", "feedback"):
                page.wait_for_function(
                    f"document.getElementById('{chart}-chart').dataset.drawn === 'true'"
                )
            marks = page.locator("#drift-strip li")
            expect(marks).to_have_count(len(rows))
            expect(page.locator("#production-checks tr.check.drift").first).to_contain_text(
                "past threshold"
            )
            # The traffic chart holds each day's count (its tooltip: the day's version too).
            counts = page.evaluate("Chart.getChart('traffic-chart').data.datasets[0].data")
            assert counts == [r["predictions"] for r in rows]
            _no_horizontal_scroll(page)
            assert page.evaluate(UNLABELLED_JS) == []
            assert page.evaluate(CONTRAST_JS) == []
            assert violations == []
            section.screenshot(path=str(ARTIFACTS / f"registry-production-1280x800-{scheme}.png"))
            # Another day from the labelled day picker, by keyboard: the page shows it.
            page.select_option("#production-day-select", production.days[0].isoformat())
            page.wait_for_url(re.compile(rf"day={production.days[0].isoformat()}"))
            expect(page.locator("#production-day")).to_contain_text(production.days[0].isoformat())
            # The drifted day's report, from its link in the day-by-day table.
            page.locator("#production-days summary").click()
            with context.expect_page() as opened:
                page.click(f"#prod-{shifted} a[href*='/monitoring/']", modifiers=["Shift"])
            report = opened.value
            report.on("console", _csp_violations(violations))
            report.wait_for_load_state()
            expect(report.locator("h1")).to_contain_text(shifted)
            expect(report.locator("h1")).to_contain_text("drift")
            # Its stylesheet and the bars' widths (inline styles) apply under the sandbox CSP.
            widths = report.evaluate(
                "Array.from(document.querySelectorAll('span.bar')).map(e => e.getBoundingClientRect().width)"
            )
            assert widths and max(widths) > 1, widths
            assert report.evaluate("getComputedStyle(document.body).marginTop") != "0px"
            _no_horizontal_scroll(report)
            report.screenshot(
                path=str(ARTIFACTS / f"monitoring-report-1280x800-{scheme}.png"), full_page=True
            )
            assert violations == []
            report.close()
        finally:
            context.close()
