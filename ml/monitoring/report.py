"""The day's HTML report: one self-contained page per model and day (no script, no link out)
under Settings.reports/monitoring/<model>/<day>.html, on a local folder or object storage.

It shows the figures only: label shares, histograms and the checks. No message, no word of
one: customer text never reaches a report. Written with Jinja (autoescaped) rather than
Evidently, which does not run with this platform's pandas (docs/monitoring.md, "Why not
Evidently").
"""

from __future__ import annotations

from typing import Any

from ml import storage
from ml.storage import Location

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ model }} {{ day }}: {{ status }}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
h1 .ok{color:#1a7f37}h1 .drift{color:#c62828}h1 .no_data{color:#777}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:2px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}tr.drift td{color:#c62828;font-weight:600}
.bar{display:inline-block;height:9px}.d{background:#3b6fd6}.r{background:#bbb}
.note{color:#666}
</style></head><body>
<h1>{{ model }} &middot; {{ day }} &middot; <span class="{{ status }}">{{ status }}</span></h1>
<p>{{ f.predictions }} predictions{% if f.versions %} (version{% for v, c in f.versions.items() %} v{{ v }}: {{ c }}{% endfor %}){% endif %},
compared with the training snapshot of v{{ f.reference.version }}
({{ f.reference.train_rows }} train rows; {{ f.reference.held_out_messages }} held-out messages scored{% if f.reference.get('label_effective_n') %}; the expected label mix is worth {{ f.reference.label_effective_n }} messages{% endif %}).
{% if status == "no_data" %}<br><b>Fewer than {{ f.min_predictions }} predictions: no check can fire.</b>{% endif %}</p>

<h2>Checks</h2>
<table><tr><th class="l">check</th><th>value</th><th>threshold</th><th>configured</th><th>sampling noise</th><th class="l">drift</th></tr>
{% for c in f.checks %}<tr class="{{ 'drift' if c.drift }}"><td class="l">{{ c.name }}</td><td>{{ num(c.value) }}</td>
<td>{{ num(c.threshold) }}</td><td>{{ num(c.configured) }}</td><td>{{ num(c.noise) }}</td><td class="l">{{ 'yes' if c.drift else 'no' }}</td></tr>
{% endfor %}</table>
<p class="note">A check fires above its threshold: the larger of the configured one and the distance
sampling alone gives for these sizes; for the rates (low_confidence_share, oos_rate,
unseen_token_share), the reference's rate plus the larger of the two; combined weighs the
others' evidence together (docs/monitoring.md).</p>

<h2>Predicted labels</h2>
<p class="note"><span class="bar d" style="width:20px"></span> this day
<span class="bar r" style="width:20px"></span> expected (the train split's labels through the model's held-out confusions). PSI {{ num(f.label_psi) }},
Jensen-Shannon {{ num(f.label_js) }} bits (in-scope labels).</p>
<table><tr><th class="l">label</th><th>day</th><th>expected</th><th>PSI term</th><th class="l"></th></tr>
{% for label in labels %}<tr><td class="l">{{ label }}</td><td>{{ pct(f.label_mix.get(label)) }}</td>
<td>{{ pct(f.reference_label_mix.get(label)) }}</td><td>{{ num(f.label_psi_by_label.get(label)) }}</td>
<td class="l"><span class="bar d" style="width:{{ w(f.label_mix.get(label)) }}px"></span><br>
<span class="bar r" style="width:{{ w(f.reference_label_mix.get(label)) }}px"></span></td></tr>
{% endfor %}</table>

<h2>Confidence</h2>
<p>mean {{ num(f.confidence.mean) }}, p10 {{ num(f.confidence.p10) }}, p50 {{ num(f.confidence.p50) }},
p90 {{ num(f.confidence.p90) }}; PSI against the held-out splits {{ num(f.confidence_psi) }}.
Under the held-out answers' 10th percentile ({{ num(f.get('low_confidence_cut')) }}): {{ pct(f.get('low_confidence_share')) }} (held-out: {{ pct(f.get('reference_low_confidence_share')) }}).
Out of scope: {{ pct(f.oos_rate) }} (held-out splits: {{ pct(f.reference_oos_rate) }}).</p>
{{ hist("confidence", conf_bins, f.confidence.histogram, f.confidence.reference_histogram) }}

<h2>Message length (words)</h2>
<p>mean {{ num(f.length.mean) }} (train {{ num(f.length.reference_mean) }}), p50 {{ num(f.length.p50) }},
p90 {{ num(f.length.p90) }}; PSI {{ num(f.length_psi) }}.
Words the train split never had: {{ pct(f.unseen_token_share) }} (held-out splits: {{ pct(f.reference_unseen_token_share) }}).</p>
{{ hist("words", length_bins, f.length.histogram, f.length.reference_histogram) }}
<p class="note">Computed {{ computed_at }} by intentflow monitor. No message text is kept in this report.</p>
</body></html>
"""

HIST = """<table><tr><th class="l">{{ what }}</th><th>day</th><th>reference</th><th class="l"></th></tr>
{% for name, a, b in rows %}<tr><td class="l">{{ name }}</td><td>{{ pct(a) }}</td><td>{{ pct(b) }}</td>
<td class="l"><span class="bar d" style="width:{{ w(a) }}px"></span><br><span class="bar r" style="width:{{ w(b) }}px"></span></td></tr>
{% endfor %}</table>"""


def _shares(counts: list[int]) -> list[float | None]:
    total = sum(counts)
    return [c / total if total else None for c in counts]


def render(model: str, day: str, figures: dict[str, Any], computed_at: str) -> str:
    from jinja2 import Environment
    from markupsafe import Markup

    env = Environment(autoescape=True)

    def num(x: Any) -> str:
        return "–" if x is None else f"{x:.4g}"

    def pct(x: Any) -> str:
        return "–" if x is None else f"{100 * x:.1f}%"

    def w(x: Any) -> int:
        return 0 if not x else max(1, round(300 * x))

    def hist(what: str, names: list[str], day_counts: list[int], ref_counts: list[int]) -> Markup:
        rows = list(zip(names, _shares(day_counts), _shares(ref_counts), strict=False))
        html = env.from_string(HIST).render(what=what, rows=rows, pct=pct, w=w)
        return Markup(html)  # noqa: S704 - rendered by the autoescaping environment above

    edges = figures["length"]["edges"]
    bounds = [-1, *[int(e) for e in edges]]
    length_bins = [
        f"{lo + 1}–{hi}" if hi > lo + 1 else f"{hi}"
        for lo, hi in zip(bounds, bounds[1:], strict=False)
    ] + [f"> {int(edges[-1]) if edges else 0}"]
    conf_bins = [f"{i / 10:.1f}–{(i + 1) / 10:.1f}" for i in range(10)]
    labels = sorted(set(figures["label_mix"]) | set(figures["reference_label_mix"]))
    return env.from_string(TEMPLATE).render(
        model=model,
        day=day,
        status=figures["status"],
        f=figures,
        labels=labels,
        conf_bins=conf_bins,
        length_bins=length_bins,
        computed_at=computed_at,
        num=num,
        pct=pct,
        w=w,
        hist=hist,
    )


def report_location(reports: Location, model: str, day: str) -> Location:
    return storage.join(reports, "monitoring", model, f"{day}.html")


def write_report(reports: Location, model: str, day: str, figures: dict[str, Any],
                 computed_at: str) -> str:  # fmt: skip
    """Write (replace) the day's report; its location as a string (the row's report_url)."""
    where = report_location(reports, model, day)
    storage.write_bytes(render(model, day, figures, computed_at).encode("utf-8"), where)
    return str(where)
