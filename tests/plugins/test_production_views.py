"""The model page's production section in process (no api-server), on a week the platform's
own code made (tests/production_state.py): the champion's answers logged through the
prediction log, agents' feedback through the feedback store, and the monitoring function's
rows and reports. Never hand-made figures: the page must show what those wrote."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pipeline_state import FILE_MODEL, PipelineState, use_state
from production_state import MODEL, Production, monitor, report_path

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

pytest_plugins = ("page_fixtures",)


@pytest.fixture
def monitored(
    pipeline_state: PipelineState,
    production: Production,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[dict]:
    """The page's settings on the pipeline state (a registry copy), its production week
    monitored into that copy; the monitoring rows, oldest first."""
    use_state(pipeline_state, tmp_path / "state", monkeypatch)
    import os

    return monitor(pipeline_state, production, os.environ["INTENTFLOW_REGISTRY_URL"])


def _section(html: str) -> str:
    return html.split('<section id="production"')[1].split("</section>")[0]


def _cells(row: str) -> list[str]:
    """The numeric cells of a table row, as read (a missing value reads "n/a")."""
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r'<td class="num">(.*?)</td>', row)]


def _chart(html: str) -> dict:
    block = html.split('<script type="application/json" id="production-data">')[1]
    return json.loads(block.split("</script>")[0])


def test_production_section_shows_what_monitoring_and_feedback_wrote(
    client: TestClient, monitored: list[dict], production: Production, pipeline_state: PipelineState
) -> None:
    from intentflow_ui.fmt import value

    from ml.config import settings
    from ml.feedback.summary import feedback_by_day

    rows = {r["day"]: r for r in monitored}
    assert list(rows) == [d.isoformat() for d in production.days]
    # The monitoring saw every logged prediction; the quiet day is `no_data`.
    for day, n in production.predictions.items():
        assert rows[day.isoformat()]["predictions"] == n
    assert rows[production.quiet.isoformat()]["status"] == "no_data"
    assert rows[production.shifted.isoformat()]["status"] == "drift"

    html = client.get("/", params={"model": MODEL}).text
    section = _section(html)
    latest = monitored[-1]
    # The latest day's status, its traffic, and its report link.
    assert f"drift, {latest['day']}" in section
    assert f"No predictions on {latest['day']}" in section
    assert f'href="/monitoring/{latest["day"]}?model={MODEL}"' in section
    # The quiet last day does not hide the drifted day before it.
    verdict = section.split('<p id="last-verdict">')[1].split("</p>")[0]
    shifted_day = production.shifted.isoformat()
    assert f"<b>{shifted_day}</b>" in verdict and "drift" in verdict
    assert f'href="/monitoring/{shifted_day}?model={MODEL}"' in verdict
    # Drift status over time: one mark per day, in order, with the checks that fired.
    marks = re.findall(r'<li class="status-(\w+)" title="([^"]+)"', section)
    assert [m[0] for m in marks] == [r["status"] for r in monitored]
    shifted = rows[production.shifted.isoformat()]
    assert shifted["figures"]["drifted"]
    title = dict((t.split(":")[0], t) for _, t in marks)[shifted["day"]]
    for name in shifted["figures"]["drifted"]:
        assert name in title
    # Day by day: traffic and confidence as the rows hold them, formatted by kind.
    for r in monitored:
        row = re.search(rf'<tr id="prod-{r["day"]}">(.*?)</tr>', section, re.S).group(1)
        cells = _cells(row)
        conf = r["figures"].get("confidence") or {}
        expected = [value("predictions", r["predictions"])]
        expected += [value("confidence", conf.get(k)) for k in ("mean", "p10", "p90")]
        assert cells == expected, (r["day"], cells)
        assert ("report</a>" in row) == report_path(
            pipeline_state, date.fromisoformat(r["day"])
        ).is_file()
    # The charts' data: the same figures, label mix bars of shares that sum to one.
    chart = _chart(html)
    assert chart["days"] == list(rows)
    assert chart["predictions"] == [r["predictions"] for r in monitored]
    assert chart["statuses"] == [r["status"] for r in monitored]
    means = [(r["figures"].get("confidence") or {}).get("mean") for r in monitored]
    assert chart["confidence"]["mean"] == means
    bars = chart["mix"]["bars"]
    assert bars[: chart["mix"]["training"]] == [
        f"training v{v}" for v in dict.fromkeys(r["reference_version"] for r in monitored)
    ]
    for k, bar in enumerate(bars):
        total = sum(s["values"][k] or 0 for s in chart["mix"]["series"])
        day_row = rows.get(bar)
        if day_row is None or day_row["figures"]["label_mix"]:
            assert total == pytest.approx(1.0, abs=1e-4), bar  # shares stored rounded
    # The agents' feedback: per day as feedback_by_day counts it, and over all days.
    feedback = feedback_by_day(settings(), MODEL)
    assert [f["day"] for f in feedback] == [d.isoformat() for d in production.feedback_days]
    for f in feedback:
        row = re.search(rf'<tr id="feedback-{f["day"]}">(.*?)</tr>', section, re.S).group(1)
        assert _cells(row) == [
            value(k, f[k])
            for k in (
                "corrections",
                "predictions_reviewed",
                "agreed",
                "agreement_rate",
                "new_labels",
            )
        ]
    assert chart["feedback"]["corrections"] == [f["corrections"] for f in feedback]
    assert sum(f["corrections"] for f in feedback) == production.corrections
    stats = section.split('id="production-stats"')[1].split("</dl>")[0]
    assert f"<dd>{value('corrections', production.corrections)}</dd>" in stats
    rate = production.agreed / production.corrections
    assert f"<dd>{value('agreement_rate', rate)}</dd>" in stats


def test_a_drifted_day_shows_its_checks_label_mix_and_report(
    client: TestClient, monitored: list[dict], production: Production
) -> None:
    from intentflow_ui.fmt import value

    day = production.shifted.isoformat()
    row = next(r for r in monitored if r["day"] == day)
    html = client.get("/", params={"model": MODEL, "day": day}).text
    section = _section(html)
    assert f'<option value="{day}" selected>' in section
    assert '<label for="production-day-select">day' in section
    for check in row["figures"]["checks"]:
        tr = re.search(
            rf'<tr class="check[^"]*" id="check-{check["name"]}">(.*?)</tr>', section, re.S
        )
        assert tr, check["name"]
        assert ("past threshold" in tr.group(1)) == check["drift"]
        assert value(f"check:{check['name']}", check["value"]) in tr.group(1)
    # Every label of the day or of training, the most moved (PSI term) first.
    labels = re.findall(r'<tr class="label-row"><th scope="row">([^<]+)</th>', section)
    mix, ref = row["figures"]["label_mix"], row["figures"]["reference_label_mix"]
    assert sorted(labels) == sorted(set(mix) | set(ref))
    psi = row["figures"]["label_psi_by_label"]
    terms = [psi[label] for label in labels if label in psi]
    assert terms == sorted(terms, reverse=True)
    # The histogram the chart draws is that day's against its reference.
    chart = _chart(html)["histogram"]
    assert chart["day"] == day
    assert chart["day_counts"] == row["figures"]["confidence"]["histogram"]
    assert chart["reference_counts"] == row["figures"]["confidence"]["reference_histogram"]
    # The day's report, served from reports/monitoring/MODEL/DAY.html, sandboxed.
    response = client.get(f"/monitoring/{day}", params={"model": MODEL})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert (
        f"{MODEL} &middot; {day}".encode() in response.content or day.encode() in response.content
    )
    csp = response.headers["content-security-policy"]
    assert csp.split(";")[0] == "sandbox" and "script-src" not in csp
    assert response.headers["cache-control"] == "no-store"
    assert client.get("/monitoring/2001-01-01", params={"model": MODEL}).status_code == 404
    assert client.get("/monitoring/yesterday", params={"model": MODEL}).status_code == 400
    assert client.get("/monitoring/..%2F..%2Fetc", params={"model": MODEL}).status_code in (
        400,
        404,
    )
    assert client.get(f"/monitoring/{day}", params={"model": "../x"}).status_code == 400
    assert client.get("/", params={"model": MODEL, "day": "soon"}).status_code == 400


def test_the_section_keeps_to_the_strict_csp(client: TestClient, monitored: list[dict]) -> None:
    response = client.get("/", params={"model": MODEL})
    html = response.text
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert not re.search(r"\sstyle=", html) and "<style" not in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all('src="/' in s or 'type="application/json"' in s for s in scripts), scripts
    assert '<script src="/static/production.js"></script>' in html
    assert client.get("/static/production.js").status_code == 200


def test_a_model_without_production_data_says_what_to_do(
    client: TestClient, monitored: list[dict]
) -> None:
    """FILE_MODEL was trained from a file and never served: the empty state names the steps."""
    section = _section(client.get("/", params={"model": FILE_MODEL}).text)
    assert f"No production data for {FILE_MODEL} yet" in section
    assert "intentflow serve" in section and "model_monitoring" in section
    assert f"intentflow monitor --model {FILE_MODEL}" in section
    assert f"POST /v1/models/{FILE_MODEL}/feedback" in section
    assert "production-data" not in section
    # An entities model: monitoring and corrections are for intent models, and it says so.
    section = _section(client.get("/", params={"model": "entities"}).text)
    assert "cover intent models" in section and "model_monitoring" not in section


def test_a_monitoring_report_is_served_only_from_its_models_folder(
    intentflow_home: Path, client: TestClient, tmp_path: Path
) -> None:
    """A report that is a link out of reports/monitoring/MODEL, or a model folder that is a
    link elsewhere, serves nothing."""
    from ml.config import settings

    folder = Path(settings().reports) / "monitoring" / MODEL
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.html"
    secret.write_text("<h1>not a report</h1>")
    (folder / "2026-11-20.html").symlink_to(secret)
    assert client.get("/monitoring/2026-11-20", params={"model": MODEL}).status_code == 404
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "2026-11-21.html").write_text("<h1>elsewhere</h1>")
    (folder.parent / "faq").symlink_to(elsewhere, target_is_directory=True)
    assert client.get("/monitoring/2026-11-21", params={"model": "faq"}).status_code == 404


def test_a_monitoring_report_on_object_storage_is_served(
    intentflow_home: Path, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the data on object storage (fsspec's memory:// here: no S3 server needed), the
    route reads the report's own key under the reports URL; nothing else."""
    from ml import storage
    from ml.config import settings

    monkeypatch.setenv("INTENTFLOW_DATA_URL", f"memory://ui-{tmp_path.name}")
    reports = settings().reports
    storage.write_bytes(
        b"<h1>intent 2026-11-20: ok</h1>",
        storage.join(reports, "monitoring", MODEL, "2026-11-20.html"),
    )
    storage.write_bytes(b"{}", storage.join(reports, "monitoring", MODEL, "reference-v1.json"))
    response = client.get("/monitoring/2026-11-20", params={"model": MODEL})
    assert response.status_code == 200 and b"2026-11-20: ok" in response.content
    assert response.headers["content-security-policy"].split(";")[0] == "sandbox"
    assert client.get("/monitoring/2026-11-21", params={"model": MODEL}).status_code == 404
    assert client.get("/monitoring/2026-11-20", params={"model": "faq"}).status_code == 404
