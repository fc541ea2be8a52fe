"""The registry page's views in process (no api-server): numbers by kind, the compare view on
versions real retrains registered, the heatmap at 150 classes, trends, model cards, example
spans and rankings (redacted), and the page's static files under its strict CSP."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from conftest import REPO

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

pytest_plugins = ("page_fixtures",)
STATIC = REPO / "plugins" / "intentflow_ui" / "static"
CHART_JS = "vendor/chart.js-4.6.1/chart.umd.min.js"


def test_numbers_are_formatted_by_kind(plugins_path: None) -> None:
    from intentflow_ui.fmt import delta, value

    assert value("n", 240.0) == "240" and value("records_read", 12034.0) == "12,034"
    assert (
        value("latency_ms_p95", 12.345) == "12.3 ms" and value("latency_ms_p50", 190.2) == "190 ms"
    )
    assert value("accuracy", 0.84213) == "84.2%" and value("oos_fpr_at_95_tpr", 0.25) == "25.0%"
    assert value("mrr", 0.73149) == "0.731" and value("oos_auroc", 0.95) == "0.950"
    assert value("throughput_per_s_batch64", 2832.8) == "2,833/s"
    assert value("macro_f1", None) == "n/a"
    # Deltas: signed, in the kind's unit, classed by whether the change is an improvement.
    up = delta("macro_f1", 0.80, 0.812)
    assert (up.text, up.css) == ("+1.2 pp", "better")
    assert (delta("ece", 0.04, 0.15).css, delta("latency_ms_p95", 190, 173).css) == (
        "worse",
        "better",
    )
    assert delta("latency_ms_p95", 190, 173).text == "\u221217.0 ms"
    assert (delta("n", 9, 15).text, delta("n", 9, 15).css) == ("+6", "same")
    assert delta("accuracy", 0.5, 0.5).css == "same" and delta("accuracy", None, 0.5) is None


def test_compare_two_real_versions(
    client: TestClient, task_versions: dict[str, dict], pipeline_state: object
) -> None:
    """intent:1 and intent:2, as the retrain steps made them: every test metric with its delta,
    classes sorted by change, the top confusions and heatmaps from their own reports."""
    from intentflow_ui.compare import read_confusion
    from intentflow_ui.fmt import delta, value

    from ml.registry.store import Registry

    with Registry(pipeline_state.registry_url) as registry:
        one, two = registry.get("intent", version=1), registry.get("intent", version=2)
    response = client.get("/compare", params={"model": "intent", "a": 1, "b": 2})
    assert response.status_code == 200
    html = response.text
    for name in ("macro_f1", "accuracy", "n", "latency_ms_p95"):
        x, y = one.metrics["test"][name], two.metrics["test"][name]
        row = html.split(f'<tr id="m-{name}">')[1].split("</tr>")[0]
        assert f'<td class="num">{value(name, x)}</td><td class="num">{value(name, y)}</td>' in row
        change = delta(name, x, y)
        assert f'<span class="delta {change.css}" title="{change.word}">{change.text}' in row
    # The headline metric leads; the parameter the two runs differ in is named.
    assert html.index('id="m-macro_f1"') < html.index('id="m-accuracy"') < html.index('id="m-n"')
    assert "batch_size" in html.split("Training parameters that differ")[1].split("</dl>")[0]
    # Per class: sorted by the change of F1, largest drop first.
    labels = re.findall(r'<tr class="class-change"><th scope="row">([^<]+)</th>', html)
    f1 = {
        v: {c: m["f1"] for c, m in i.metrics["test"]["per_class"].items()}
        for v, i in ((1, one), (2, two))
    }
    changes = [f1[2][c] - f1[1][c] for c in labels if c in f1[1] and c in f1[2]]
    assert changes == sorted(changes) and len(labels) == len(set(f1[1]) | set(f1[2]))
    # Top confusions as "true → predicted: n", from each version's own confusion matrix.
    for info in (one, two):
        confusion = read_confusion(info)
        assert confusion is not None
        listed = html.split(f'<div id="confusions-v{info.version}">')[1].split("</div>")[0]
        for true, predicted, count in confusion.top(3):
            assert re.search(rf"{true} <span[^>]*>→</span> {predicted}: <b>{count}</b>", listed), (
                true,
                predicted,
            )
        heat = html.split(f'<div id="heatmap-v{info.version}">')[1].split("</table>")[0]
        assert heat.count('<th scope="row"') == min(15, len(confusion.labels))
    # Side by side, both heatmaps show the same classes: the worst of both versions.
    rows = [
        re.findall(
            r'<th scope="row" class="row" title="([^"]+)"',
            html.split(f'<div id="heatmap-v{v}">')[1].split("</table>")[0],
        )
        for v in (1, 2)
    ]
    shared = set(read_confusion(one).labels) & set(read_confusion(two).labels)
    assert [r for r in rows[0] if r in shared] == [r for r in rows[1] if r in shared]
    assert "classes with most errors in both versions" in html
    # Asking for every class.
    html = client.get("/compare", params={"model": "intent", "a": 1, "b": 2, "k": 0}).text
    total = len(read_confusion(two).labels)
    assert f"all {total} classes" in html
    assert client.get("/compare", params={"model": "intent", "a": 1, "b": 99}).status_code == 404


def test_heatmap_stays_readable_at_150_classes(plugins_path: None) -> None:
    """150 classes: the default view keeps the 15 with most errors, not a 150x150 blur."""
    from intentflow_ui.compare import Confusion, heatmap

    labels = [f"intent_{i:03d}" for i in range(150)]
    matrix = [[0] * 150 for _ in range(150)]
    for i in range(150):
        matrix[i][i] = 20
    for i in range(0, 40, 2):  # 20 confused pairs, the first ones worst
        matrix[i][i + 1] = 40 - i
    confusion = Confusion(labels, matrix)
    top = heatmap(confusion, 15)
    assert top.size == 15 and top.total == 150
    assert {"intent_000", "intent_001", "intent_002"} <= set(top.labels)
    assert confusion.top(1) == [("intent_000", "intent_001", 40)]
    cell = top.rows[top.labels.index("intent_000")][top.labels.index("intent_001")]
    assert (cell.count, cell.heat) == (40, round(40 / 60 * 10))
    everything = heatmap(confusion, 0)
    assert everything.size == 150 and all(len(r) == 150 for r in everything.rows)


def test_each_task_type_has_its_own_view(
    client: TestClient, task_versions: dict[str, dict]
) -> None:
    """Entities: precision, recall and F1 per type and example spans; answers: R@1, R@5, MRR
    and example rankings: from what their evaluations stored, redacted."""
    html = client.get("/", params={"model": "entities"}).text
    classes = html.split('<section id="classes"')[1].split("</section>")[0]
    for column in ("precision", "recall", "f1", "support"):
        assert f'<th scope="col" class="num">{column}</th>' in classes
    per_type = task_versions["entities"]["per_class"]
    shown = re.findall(r'<tr class="class-row"><th scope="row">([^<]+)</th>', classes)
    assert sorted(shown) == sorted(per_type)
    f1 = [per_type[t]["f1"] for t in shown]
    assert f1 == sorted(f1)  # weakest first
    examples = html.split('<section id="examples"')[1].split("</section>")[0]
    assert "Example spans of v1" in examples and '<li class="example">' in examples
    html = client.get("/", params={"model": "answers"}).text
    ranking = html.split('<section id="answers"')[1].split("</section>")[0]
    for name in ("recall_at_1", "recall_at_5", "mrr"):
        assert f"<dt>{name}</dt>" in ranking
    examples = html.split('<section id="examples"')[1].split("</section>")[0]
    assert "Example rankings of v1" in examples and "expected reply" in examples


def test_example_spans_never_keep_a_spans_text(plugins_path: None) -> None:
    from ml.tasks.examples import entity_examples, entity_segments

    text = "Hi, this is Anna Smith, order 12345678 needs a refund, write to anna@example.com"
    gold = [("person_name", 12, 22), ("order_id", 30, 38)]
    predicted = [("person_name", 12, 16)]  # half the name found, the order id missed
    segments = entity_segments(text, gold, predicted)
    assert segments is not None
    kept = json.dumps(segments)
    assert "Anna" not in kept and "Smith" not in kept and "12345678" not in kept
    assert "anna@example.com" not in kept and "[EMAIL]" in kept  # redacted outside spans
    assert {"gold": "person_name", "pred": None} in segments
    assert {"gold": "order_id", "pred": None} in segments
    # A predicted span that cuts a word: the rest of the word is masked too.
    cut = entity_segments("call Johnathan now", [], [("person_name", 5, 9)])
    assert cut is not None and "athan" not in json.dumps(cut)
    [example] = entity_examples([text], [gold], [predicted])
    assert example["exact"] is False


def test_real_evaluations_keep_redacted_examples_only(pipeline_state: object) -> None:
    """The entities and answers versions of the pipeline state: examples.json beside their
    metrics, and no gold span's text in it."""
    import csv

    from ml.registry.store import Registry

    with Registry(pipeline_state.registry_url) as registry:
        infos = {v.model: v for v in registry.list_versions()}
    found = {}
    for model in ("entities", "answers"):
        reports = Path(infos[model].lineage["evaluation_reports"])
        found[model] = json.loads((reports / "challenger" / "test" / "examples.json").read_text())
        assert found[model], model
    # The text kept between spans (the JSON's keys, such as "gold", are not text).
    kept = " ".join(s["text"] for e in found["entities"] for s in e["segments"] if "text" in s)
    with (pipeline_state.home / "entities.csv").open(encoding="utf-8") as fh:
        values = [r["entity_value"] for r in csv.DictReader(fh) if r.get("entity_value")]
    assert values
    for value in values:  # names, order ids, cities...: never in the kept examples
        assert value not in kept, value
    for example in found["answers"]:
        assert len(example["top"]) == 5 and "question" in example


def test_trend_data_marks_the_champions_moves(
    client: TestClient, task_versions: dict[str, dict]
) -> None:
    html = client.get("/", params={"model": "intent"}).text
    data = json.loads(
        html.split('<script type="application/json" id="trend-data">')[1].split("</script>")[0]
    )
    assert [v["version"] for v in data["versions"]] == [1, 2]
    assert {"name": "macro_f1", "kind": "rate"} in data["metrics"]
    assert [(c["version"], c["action"]) for c in data["champion"]] == [(1, "promote")]
    assert all(v["at"] and "macro_f1" in v["values"] for v in data["versions"])


def test_model_card_is_rendered_and_its_html_is_not(
    client: TestClient, task_versions: dict[str, dict], tmp_path: Path
) -> None:
    response = client.get("/card/1", params={"model": "entities"})
    assert response.status_code == 200
    assert '<article class="card-md" id="model-card">' in response.text
    assert "<h2>Intended use and limitations</h2>" in response.text
    from intentflow_ui.app import markdown

    rendered = markdown.render("# Card\n\n<script>alert(1)</script> <img src=x onerror=y>")
    assert "<script>" not in rendered and "<img" not in rendered
    assert client.get("/card/9", params={"model": "entities"}).status_code == 404


def test_page_is_self_contained_under_a_strict_csp(
    client: TestClient, task_versions: dict[str, dict]
) -> None:
    """Scripts and styles only from the app's own static files: no inline script or style,
    no CDN, nothing that would fail offline; the vendored Chart.js is the pinned file."""
    for path, params in (
        ("/", {"model": "intent"}),
        ("/compare", {"model": "intent", "a": 1, "b": 2}),
    ):
        response = client.get(path, params=params)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        html = response.text
        assert not re.search(r"\sstyle=", html) and "<style" not in html
        scripts = re.findall(r"<script([^>]*)>", html)
        assert all('src="/' in s or 'type="application/json"' in s for s in scripts), scripts
        assert not re.search(r'(src|href)="(https?:)?//', html)
    chart = client.get(f"/static/{CHART_JS}")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("text/javascript")
    pinned = (STATIC / "vendor" / "README.md").read_text()
    assert hashlib.sha256(chart.content).hexdigest() in pinned
    assert "MIT" in (STATIC / "vendor" / "chart.js-4.6.1" / "LICENSE.md").read_text()
    for bad in ("../app.py", "..%2Fapp.py", "vendor/../../app.py", "nothing.js"):
        assert client.get(f"/static/{bad}").status_code == 404, bad
