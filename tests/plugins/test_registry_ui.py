"""The registry plugin against a real `airflow api-server`: auth, permission, CSRF, promotion.

Plus the page's rendering of awkward registries (no models, one version, no metrics, no
confusion-matrix file), from a real registry without a server.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pipeline_state import FILE_MODEL, pipeline_env

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from ui_server import UiServer

pytest_plugins = ("ui_server", "page_fixtures")
MODEL = "intent"  # retrained twice in tests/pipeline_state.py; FILE_MODEL from a file there


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def call(
    server: UiServer,
    path: str,
    *,
    token: str | None = None,
    cookie: str | None = None,
    form: dict | None = None,
    headers: dict | None = None,
) -> tuple[int, dict, bytes]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(f"{server.url}{path}", data, dict(headers or {}))
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if cookie:
        req.add_header("Cookie", f"_token={cookie}")
    try:
        with _opener.open(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def champion(server: UiServer) -> int:
    from ml.registry.store import Registry

    with Registry(server.registry_url) as registry:
        return registry.get(MODEL, alias="champion").version


@pytest.mark.parametrize(
    "path",
    [
        "/intentflow/",
        "/intentflow/api/models",
        "/intentflow/confusion/2.png?model=intent",
        "/intentflow/validation/2026-11-20",
        f"/intentflow/monitoring/2026-11-20?model={MODEL}",
        f"/intentflow/api/audit/{MODEL}",
        f"/intentflow/compare?model={MODEL}&a=1&b=2",
        f"/intentflow/card/1?model={MODEL}",
        "/intentflow/static/registry.css",
    ],
)
def test_every_endpoint_refuses_anonymous(ui_server: UiServer, path: str) -> None:
    status, _, _ = call(ui_server, path)
    assert status == 401
    status, _, _ = call(ui_server, path, token="not-a-jwt")
    assert status in (401, 403)


def test_anonymous_post_is_refused_and_changes_nothing(ui_server: UiServer) -> None:
    before = champion(ui_server)
    form = {"model": MODEL, "version": "2", "reason": "sneaky"}
    status, _, _ = call(ui_server, "/intentflow/champion", form=form)
    assert status == 401
    assert champion(ui_server) == before


def _row(html: str, row_id: str) -> str:
    """The table row `<tr id="row_id" ...>` of a page (fails when it is not there)."""
    found = re.search(rf'<tr id="{re.escape(row_id)}"[^>]*>(.*?)</tr>', html, re.S)
    assert found, row_id
    return found.group(1)


def test_every_page_on_the_pipelines_own_state(ui_server: UiServer) -> None:
    """Every route of the plugin on what real ingests, retrains and `train --data` wrote:
    each page answers and shows the state's own versions, days and failed expectations."""
    from ml import lake
    from ml.config import settings
    from ml.registry.store import Registry

    state, token = ui_server.state, ui_server.token()
    with Registry(ui_server.registry_url) as registry:
        versions = {(v.model, v.version): v for v in registry.list_versions()}
    status, _, body = call(ui_server, "/intentflow/", token=token)
    html = body.decode()
    assert status == 200 and '<canvas id="trend-chart"' in html and 'id="trend-data"' in html
    assert "Promote v2" in html and 'name="csrf_token"' in html
    for version, window in state.windows.items():
        row = _row(html, f"v{version}")
        alias = "champion" if version == 1 else "challenger"
        assert f'<span class="alias {alias}">{alias}</span>' in row
        macro_f1 = versions[(MODEL, version)].metrics["test"]["macro_f1"]
        assert f'<td class="num">{100 * macro_f1:.1f}%</td>' in row  # a rate, as a percentage
        assert f"{window[0]} → {window[-1]}" in row
        # The version's own page: its run, each task's logs and its days' Data Docs, a click away.
        _, _, body = call(ui_server, f"/intentflow/?version={version}", token=token)
        links = body.decode().split('<ul class="links" id="links">')[1].split("</ul>")[0]
        run = f"/dags/intent_retrain/runs/{urllib.parse.quote(state.runs[version])}"
        assert f'href="{run}"' in links
        for task in ("snapshot", "fine_tune", "evaluate", "register", "promote"):
            assert f'href="{run}/tasks/{task}"' in links
        days = [f'<a href="/intentflow/validation/{day}">{day}</a>' for day in window]
        assert "Data Docs: " + ", ".join(days) in links
        assert f'href="/intentflow/card/{version}?model=intent"' in links
    with pipeline_env(state.home):
        lake_root = settings().lake
    for day in state.published:
        manifest = lake.read_manifest(lake_root, day)
        row = _row(html, f"day-{day}")
        assert f'<td>{day}</td><td class="num">{manifest["rows_read"]:,}</td>' in row
        share = manifest["rows_quarantined"] / manifest["rows_read"]
        assert f'<td class="num">{100 * share:.1f}%</td>' in row
        rules = ", ".join(f"{k}={v}" for k, v in sorted(manifest["quarantine_rules"].items()))
        assert f"<td>{rules}</td>" in row
        assert "<td>none</td>" in row  # no failed expectation on a published day
        assert f'href="/intentflow/validation/{day}"' in row
    rejected = _row(html, f"day-{state.rejected}")
    assert "rejected, not published" in rejected
    assert f"<td>{', '.join(state.rejected_failures)}</td>" in rejected
    assert "expect_table_row_count_to_be_between" in rejected

    # The model trained from a file names its file, and links to no lake day.
    status, _, body = call(ui_server, f"/intentflow/?model={FILE_MODEL}", token=token)
    faq = body.decode()
    assert status == 200
    assert f'<span class="file mono">{state.labeled_file}</span>' in _row(faq, "v1")
    for page in (html, faq):
        assert "/validation/None" not in page and "none recorded" not in page

    for day in (*state.published, state.rejected):
        status, _, body = call(ui_server, f"/intentflow/validation/{day}", token=token)
        verdict = "FAILED" if day == state.rejected else "passed"
        assert status == 200 and f"Transcripts {day}: {verdict}" in body.decode()
    for version in state.windows:
        status, headers, body = call(ui_server, f"/intentflow/?version={version}", token=token)
        assert status == 200 and f"Confusions of v{version}" in body.decode()
        status, headers, body = call(
            ui_server, f"/intentflow/confusion/{version}.png?model={MODEL}", token=token
        )
        assert status == 200 and headers["content-type"] == "image/png"
        assert body.startswith(b"\x89PNG")
    status, _, body = call(ui_server, f"/intentflow/api/audit/{MODEL}", token=token)
    first = [(e["action"], e["version"], e["actor"]) for e in json.loads(body)][:4]
    assert status == 200 and first == [
        ("register", 1, "airflow:intent_retrain"),
        ("promote", 1, "airflow:intent_retrain"),
        ("register", 2, "airflow:intent_retrain"),
        ("set_alias", 2, "airflow:intent_retrain"),
    ]


def test_confusion_png_and_validation_report_are_served(ui_server: UiServer) -> None:
    token = ui_server.token()
    status, headers, body = call(ui_server, "/intentflow/confusion/2.png?model=intent", token=token)
    assert status == 200 and headers["content-type"] == "image/png"
    assert body.startswith(b"\x89PNG")
    assert call(ui_server, "/intentflow/confusion/9.png?model=intent", token=token)[0] == 404
    day = ui_server.state.published[0]
    status, headers, body = call(ui_server, f"/intentflow/validation/{day}", token=token)
    assert status == 200 and f"Transcripts {day}: passed".encode() in body
    # Pipeline-written HTML on the Airflow origin: sandboxed (no script, an opaque origin).
    assert headers["content-security-policy"].split(";")[0] == "sandbox"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    assert call(ui_server, "/intentflow/validation/2026-01-01", token=token)[0] == 404
    assert call(ui_server, "/intentflow/validation/..%2F..%2Fetc", token=token)[0] in (400, 404)


def test_inputs_are_validated(ui_server: UiServer) -> None:
    token = ui_server.token()
    assert call(ui_server, "/intentflow/?model=%3Cscript%3E", token=token)[0] == 400
    assert call(ui_server, "/intentflow/?version=abc", token=token)[0] == 422
    for form in (
        {"model": MODEL, "version": "2", "reason": ""},  # no reason
        {"model": MODEL, "version": "-1", "reason": "fine reason"},
        {"model": "<b>x</b>", "version": "2", "reason": "fine reason"},
        {"model": MODEL, "version": "99", "reason": "no such version"},
    ):
        status, _, _ = call(ui_server, "/intentflow/champion", token=token, form=form)
        assert status == 400, form


def test_viewer_can_read_but_not_promote(ui_server: UiServer) -> None:
    token = ui_server.token("viewer")
    status, _, body = call(ui_server, "/intentflow/", token=token)
    assert status == 200 and b"read only" in body and b"Promote v2" not in body
    before = champion(ui_server)
    form = {"model": MODEL, "version": "2", "reason": "viewer tries"}
    assert call(ui_server, "/intentflow/champion", token=token, form=form)[0] == 403
    assert champion(ui_server) == before


def test_cookie_post_needs_same_origin_and_csrf_token(ui_server: UiServer) -> None:
    cookie = ui_server.token()
    _, _, body = call(ui_server, "/intentflow/", cookie=cookie)
    csrf = body.decode().split('name="csrf_token" value="')[1].split('"')[0]
    form = {"model": MODEL, "version": "2", "reason": "csrf check", "csrf_token": csrf}
    before = champion(ui_server)
    evil = {"Origin": "https://evil.example"}
    assert call(ui_server, "/intentflow/champion", cookie=cookie, form=form, headers=evil)[0] == 403
    same = {"Origin": ui_server.url}
    wrong = {**form, "csrf_token": "0" * 64}
    assert (
        call(ui_server, "/intentflow/champion", cookie=cookie, form=wrong, headers=same)[0] == 403
    )
    assert champion(ui_server) == before


def test_api_models_lists_versions_with_their_task(ui_server: UiServer) -> None:
    status, headers, body = call(ui_server, "/intentflow/api/models", token=ui_server.token())
    assert status == 200 and headers["content-type"] == "application/json"
    data = json.loads(body)
    assert data["models"] == ["answers", "entities", FILE_MODEL, MODEL]
    assert [(v["model"], v["version"], v["task"]) for v in data["versions"]] == [
        ("answers", 1, "answers"),
        ("entities", 1, "entities"),
        (FILE_MODEL, 1, "intent"),
        (MODEL, 1, "intent"),
        (MODEL, 2, "intent"),
    ]


def test_promote_and_roll_back_through_the_api_are_audited(ui_server: UiServer) -> None:
    token = ui_server.token()
    form = {"model": MODEL, "version": "2", "reason": "better macro-F1 <b>really</b>"}
    status, headers, _ = call(ui_server, "/intentflow/champion", token=token, form=form)
    assert status == 303 and "done=promote" in headers["location"]
    assert champion(ui_server) == 2
    form = {"model": MODEL, "version": "1", "reason": "v2 misroutes refunds"}
    assert call(ui_server, "/intentflow/champion", token=token, form=form)[0] == 303
    assert champion(ui_server) == 1
    status, _, body = call(ui_server, f"/intentflow/api/audit/{MODEL}", token=token)
    trail = [(e["action"], e["version"], e["actor"], e["reason"]) for e in json.loads(body)][-2:]
    assert trail == [
        ("promote", 2, "admin", "better macro-F1 <b>really</b>"),
        ("rollback", 1, "admin", "v2 misroutes refunds"),
    ]
    _, _, page = call(ui_server, "/intentflow/", token=token)
    assert b"&lt;b&gt;really&lt;/b&gt;" in page and b"<b>really</b>" not in page


# --- per-DAG permissions (the DAG-scoped users of tests/ui_server.py) --------------------------


def test_a_model_is_shown_only_to_users_who_may_read_its_dag(ui_server: UiServer) -> None:
    """entities_ops may read entities_retrain only: it sees the entities model and nothing
    of intent (the page, its audit, its pictures), nor ingest health or validation reports."""
    token = ui_server.token("entities_ops")
    status, _, body = call(ui_server, "/intentflow/api/models", token=token)
    data = json.loads(body)
    assert status == 200 and data["models"] == ["entities"]
    assert {v["model"] for v in data["versions"]} == {"entities"}
    status, _, body = call(ui_server, "/intentflow/", token=token)
    html = body.decode()
    assert status == 200 and '<h2 id="versions-h">Versions of entities</h2>' in html
    assert "?model=intent" not in html and f"?model={FILE_MODEL}" not in html
    assert 'id="day-' not in html and "need read access to transcripts_ingest" in html
    day = ui_server.state.published[0]
    for path in (
        f"/intentflow/?model={MODEL}",
        f"/intentflow/api/audit/{MODEL}",
        f"/intentflow/confusion/1.png?model={MODEL}",
        f"/intentflow/validation/{day}",
        f"/intentflow/monitoring/{day}?model={MODEL}",
        f"/intentflow/compare?model={MODEL}&a=1&b=2",
        f"/intentflow/card/1?model={MODEL}",
    ):
        assert call(ui_server, path, token=token)[0] == 403, path
    assert call(ui_server, "/intentflow/compare?model=entities&a=1&b=1", token=token)[0] == 200
    assert call(ui_server, "/intentflow/api/audit/entities", token=token)[0] == 200

    token = ui_server.token("intent_ops")
    _, _, body = call(ui_server, "/intentflow/api/models", token=token)
    assert json.loads(body)["models"] == [MODEL]
    assert call(ui_server, f"/intentflow/validation/{day}", token=token)[0] == 200
    assert call(ui_server, "/intentflow/?model=entities", token=token)[0] == 403


def test_moving_a_champion_needs_permission_on_that_models_dag(ui_server: UiServer) -> None:
    before = champion(ui_server)
    entities_ops, intent_ops = ui_server.token("entities_ops"), ui_server.token("intent_ops")
    form = {"model": MODEL, "version": "2", "reason": "not my model"}
    assert call(ui_server, "/intentflow/champion", token=entities_ops, form=form)[0] == 403
    assert champion(ui_server) == before
    form = {"model": "entities", "version": "1", "reason": "not my model either"}
    assert call(ui_server, "/intentflow/champion", token=intent_ops, form=form)[0] == 403
    # Each may move its own model's champion.
    form = {"model": "entities", "version": "1", "reason": "confirm v1"}
    assert call(ui_server, "/intentflow/champion", token=entities_ops, form=form)[0] == 303
    _, _, body = call(ui_server, f"/intentflow/?model={MODEL}", token=intent_ops)
    assert b"Promote v2" in body
    form = {"model": MODEL, "version": "2", "reason": "intent ops promote"}
    assert call(ui_server, "/intentflow/champion", token=intent_ops, form=form)[0] == 303
    assert champion(ui_server) == 2
    form = {"model": MODEL, "version": str(before), "reason": "intent ops roll back"}
    assert call(ui_server, "/intentflow/champion", token=intent_ops, form=form)[0] == 303
    assert champion(ui_server) == before


# --- rendering awkward registries (real registry, no server) ------------------------------


def _render(intentflow_home: Path, **query: object) -> str:
    from intentflow_ui.app import render_page
    from intentflow_ui.data import build_page

    from ml.config import settings
    from ml.registry.store import Registry

    with Registry(settings().registry_url) as registry:
        data = build_page(registry, settings(), query.get("model"), query.get("version"), None)
    return render_page(data, "tester", True, "t", None, "/intentflow")


def _register(
    registry_url: str, metrics: dict, lineage: dict | None = None, **columns: str
) -> None:
    """A version of MODEL; its artifact is nowhere unless `columns` say where."""
    from ml.registry.store import Registry

    fields = {"artifact_uri": "/nowhere", "artifact_sha256": "0" * 64, **columns}
    with Registry(registry_url) as registry:
        registry.register_version(
            MODEL,
            base_model="minilm",
            data_snapshot_hash="h",
            params={},
            lineage=lineage or {},
            metrics=metrics,
            **fields,
        )


def test_empty_registry_renders_and_says_so(intentflow_home: Path, plugins_path: None) -> None:
    html = _render(intentflow_home)
    assert "The registry holds no models yet" in html
    assert "No lake partitions yet" in html


def test_one_version_without_metrics_or_reports(intentflow_home: Path, plugins_path: None) -> None:
    from ml.config import settings

    _register(settings().registry_url, {})
    html = _render(intentflow_home)
    assert 'id="v1"' in html
    assert "Only one version: nothing to compare yet." in html
    assert "Version 1 has no test metrics." in html
    assert "No version is champion." in html
    assert "No version has test macro_f1: no chart." in html
    assert "Version 1 has no confusion matrix (evaluation report)." in html
    assert "No confusion matrix for v1" in html
    assert "v1 has no per-class metrics." in html


def test_registry_text_is_escaped(intentflow_home: Path, plugins_path: None) -> None:
    from ml.config import settings

    _register(
        settings().registry_url,
        {"test": {"macro_f1": 0.5, "per_class": {"<img src=x onerror=alert(1)>": {"f1": 0.5}}}},
        {"run_id": "<script>alert(1)</script>", "dag_id": "intent_retrain"},
    )
    html = _render(intentflow_home)
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_run_link_comes_from_the_lineage_columns(intentflow_home: Path, plugins_path: None) -> None:
    """Retrain records its DAG run in the registry's lineage columns, not the JSON."""
    from ml.config import settings

    _register(
        settings().registry_url,
        {"test": {"macro_f1": 0.5}},
        {},
        dag_id="intent_retrain",
        run_id="scheduled__2026-11-22",
    )
    html = _render(intentflow_home)
    assert 'href="/dags/intent_retrain/runs/scheduled__2026-11-22"' in html


def test_a_versions_lake_table_version_is_shown(intentflow_home: Path, plugins_path: None) -> None:
    """A lake snapshot's lineage names the transcripts table version it read."""
    from ml.config import settings

    partitions = [{"day": "2026-11-22", "content_hash": "x"}]
    _register(settings().registry_url, {}, {"partitions": partitions, "lake_version": 42})
    _register(settings().registry_url, {}, {"partitions": partitions, "lake_version": "<b>"})
    assert "(lake v42)" in _render(intentflow_home, version=1)
    assert "(lake v" not in _render(intentflow_home, version=2)  # not a version: not shown


def test_out_of_scope_figures_are_shown_readably(intentflow_home: Path, plugins_path: None) -> None:
    """Intent versions' out-of-scope figures (ml.tasks.intent.out_of_scope): a table of the
    selected version on test and each golden set, beside the champion's; counts as counts."""
    from ml.config import settings
    from ml.registry.store import Registry

    def figures(recall: float) -> dict:
        return {
            "oos_n": 40,
            "oos_recall": recall,
            "oos_precision": 0.64,
            "oos_auroc": 0.9512,
            "oos_fpr_at_95_tpr": 0.25,
            "in_scope_accuracy": 0.9,
            "in_scope_kept": 0.95,
        }

    url = settings().registry_url
    _register(url, {"test": {"macro_f1": 0.8}})  # v1: trained before the feature
    _register(url, {"test": {"macro_f1": 0.8, **figures(0.75)}})
    _register(
        url,
        {
            "test": {"macro_f1": 0.81, **figures(0.8125)},
            "golden:regression": {"macro_f1": 0.7, "oos_n": 0, "in_scope_accuracy": 0.88},
        },
    )
    with Registry(url) as registry:
        registry.set_alias(MODEL, "champion", 2, actor="t", reason="t")
    html = _render(intentflow_home)
    section = html.split('<section id="out-of-scope"')[1].split("</section>")[0]
    assert '<h2 id="oos-h">Out of scope: v3 vs champion v2</h2>' in section
    for title in ("OOS recall at the threshold", "OOS AUROC", "in-scope accuracy at the threshold"):
        assert f'<th scope="col" class="num wrap">{title}</th>' in section
    rows = section.split('<tr class="oos">')[1:]
    assert [r.split("</td>")[0] for r in rows] == ["<td>v3", "<td>v3", "<td>v2 (champion)"]
    # Rates as percentages, the count as a count, AUROC as a score.
    assert "<td>test</td>" in rows[0] and '<td class="num">81.2%</td>' in rows[0]
    assert '<td class="num">40</td>' in rows[0] and '<td class="num">0.951</td>' in rows[0]
    # A golden set without out-of-scope examples: recall and AUROC are not measured there.
    assert "<td>golden:regression</td>" in rows[1] and '<td class="num">0</td>' in rows[1]
    assert rows[1].count("n/a") == 5
    assert '<td class="num">75.0%</td>' in rows[2]
    # The versions table shows the headline out-of-scope metric as a column too.
    versions = html.split('<section id="versions"')[1].split("</table>")[0]
    assert '<th scope="col" class="num">oos_recall</th>' in versions
    assert '<td class="num">81.2%</td>' in versions
    old = _render(intentflow_home, version=1)
    assert "v1 has no out-of-scope figures" in old


def test_plugin_is_in_the_airflow_ui_navigation(ui_server: UiServer) -> None:
    status, _, body = call(ui_server, "/api/v2/plugins", token=ui_server.token())
    assert status == 200
    plugins = {p["name"]: p for p in json.loads(body)["plugins"]}
    views = plugins["intentflow_registry"]["external_views"]
    assert [(v["name"], v["href"], v["destination"]) for v in views] == [
        ("Model registry", "/intentflow/", "nav")
    ]


@pytest.mark.parametrize(
    ("model", "primary", "per_class"),
    [("entities", "micro_f1", "f1"), ("answers", "mrr", "mrr"), ("intent", "macro_f1", "f1")],
)
def test_each_task_shows_its_own_metrics(
    intentflow_home: Path,
    plugins_path: None,
    task_versions: dict[str, dict],
    model: str,
    primary: str,
    per_class: str,
) -> None:
    """The page leads with the task's primary metric (first column, the chart's default) and
    shows its per-class metric, from the version's own registered figures."""
    from intentflow_ui.fmt import value

    test = task_versions[model]
    html = _render(intentflow_home, model=model)
    assert f'<th scope="col">aliases</th><th scope="col" class="num">{primary}</th>' in html
    assert f'<td class="num">{value(primary, test[primary])}</td>' in html
    assert f'<option value="{primary}" selected>' in html
    assert "no chart" not in html
    heading = {"entities": "Per entity type", "answers": "Per intent", "intent": "Per class"}
    assert f'<h2 id="classes-h">{heading[model]}: v' in html
    assert f'<th scope="col" class="num">{per_class}</th>' in html.split('id="classes"')[1]
    for label, figures in test["per_class"].items():
        if figures.get(per_class) is not None:
            row = html.split(f'<tr class="class-row"><th scope="row">{label}</th>')[1]
            assert (
                f'<td class="num">{value(per_class, figures[per_class])}</td>'
                in row.split("</tr>")[0]
            )


def test_api_models_gives_each_versions_task_type(
    task_versions: dict[str, dict], client: TestClient
) -> None:
    """/api/models in-process (authentication stubbed; the server tests check it): every
    version says which task type it is, beside its aliases and scalar test metrics."""
    response = client.get("/api/models")
    assert response.status_code == 200
    data = response.json()
    assert data["models"] == ["answers", "entities", FILE_MODEL, "intent"]
    versions = {v["model"]: v for v in data["versions"]}
    assert {name: v["task"] for name, v in versions.items()} == {
        "answers": "answers",
        "entities": "entities",
        FILE_MODEL: "intent",
        "intent": "intent",
    }
    assert versions["entities"]["test"]["micro_f1"] == task_versions["entities"]["micro_f1"]
    assert "per_class" not in versions["entities"]["test"]


# --- in process: what the app serves and refuses (no server) ----------------------------


DAY = "2026-11-20"


def _manifest_names(report: str | Path) -> None:
    """The day's lake partition manifest names `report` as its validation report."""
    from ml import lake
    from ml.config import settings

    folder = Path(lake.partition_path(settings().lake, date.fromisoformat(DAY)))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_manifest.json").write_text(json.dumps({"validation_report": str(report)}))


def _report_folder() -> Path:
    from ml import lake
    from ml.config import settings

    return Path(lake.partition_path(settings().reports, date.fromisoformat(DAY)))


def test_a_validation_report_is_served_only_from_its_days_report_folder(
    intentflow_home: Path, client: TestClient, tmp_path: Path
) -> None:
    """Whatever the manifest names, and wherever links point, nothing outside
    reports/dt=DAY is served; the report itself is, sandboxed."""
    secret = tmp_path / "outside" / "validation.html"
    secret.parent.mkdir()
    secret.write_text("<h1>not a report</h1>")
    folder = _report_folder()
    folder.mkdir(parents=True)
    for named in (
        "/etc/passwd",
        secret,
        folder / ".." / ".." / ".." / "outside" / "validation.html",
    ):
        _manifest_names(named)
        response = client.get(f"/validation/{DAY}")
        assert response.status_code == 404, named
        assert b"root:" not in response.content and b"not a report" not in response.content
    (folder / "validation.html").symlink_to(secret)  # a link out of the folder
    _manifest_names(folder / "validation.html")
    assert client.get(f"/validation/{DAY}").status_code == 404
    (folder / "validation.html").unlink()
    (folder / "validation.html").write_text("<h1>Transcripts 2026-11-20: passed</h1>")
    response = client.get(f"/validation/{DAY}")
    assert response.status_code == 200 and b"passed" in response.content
    assert response.headers["content-security-policy"].split(";")[0] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_day_folder_that_links_elsewhere_serves_nothing(
    intentflow_home: Path, client: TestClient, tmp_path: Path
) -> None:
    """A rejected day (no manifest) whose report folder is a link to another folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "validation.html").write_text("<h1>elsewhere</h1>")
    folder = _report_folder()
    folder.parent.mkdir(parents=True)
    folder.symlink_to(elsewhere, target_is_directory=True)
    assert client.get(f"/validation/{DAY}").status_code == 404


def test_the_page_refuses_a_version_whose_artifact_is_missing_as_the_cli_does(
    intentflow_home: Path, client: TestClient, tmp_path: Path
) -> None:
    from ml.artifact.integrity import directory_sha256
    from ml.config import settings
    from ml.registry.store import Registry

    url = settings().registry_url
    with Registry(url) as registry:
        for n in (1, 2, 3):
            artifact = tmp_path / f"artifact-{n}"
            artifact.mkdir()
            (artifact / "model.safetensors").write_bytes(b"weights %d" % n)
            _register(
                url, {}, artifact_uri=str(artifact), artifact_sha256=directory_sha256(artifact)
            )
        registry.set_alias(MODEL, "champion", 2, actor="t", reason="t")
        shutil.rmtree(tmp_path / "artifact-3")
        shutil.rmtree(tmp_path / "artifact-1")
        bearer = {"Authorization": "Bearer stubbed"}  # no cookie: no CSRF token needed
        for version in ("3", "1"):  # a promotion, a rollback
            form = {"model": MODEL, "version": version, "reason": "try it"}
            response = client.post("/champion", data=form, headers=bearer)
            assert response.status_code == 400, version
            assert f"cannot point an alias at {MODEL}:{version}" in response.json()["detail"]
            assert "is missing" in response.json()["detail"]
        assert registry.get(MODEL, alias="champion").version == 2
