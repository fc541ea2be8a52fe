"""An inline SVG line chart of one metric across versions (no JS, nothing downloaded)."""

from __future__ import annotations

from html import escape

W, H, PAD = 560, 220, 40


def metric_chart(points: list[tuple[int, float | None]], metric: str) -> str:
    """`points` are (version, value); versions without the metric are left out of the line."""
    known = [(v, y) for v, y in points if y is not None]
    title = f"test {metric} by version"
    if not known:
        return f'<p class="missing">No version has test {escape(metric)}: no chart.</p>'
    lo, hi = min(y for _, y in known), max(y for _, y in known)
    if hi - lo < 1e-9:  # a flat line still needs a visible range
        lo, hi = lo - 0.05, hi + 0.05
    versions = [v for v, _ in points]
    span = max(len(versions) - 1, 1)

    def x(i: int) -> float:
        return PAD + (W - 2 * PAD) * (i / span if len(versions) > 1 else 0.5)

    def y(value: float) -> float:
        return H - PAD - (H - 2 * PAD) * (value - lo) / (hi - lo)

    index = {v: i for i, v in enumerate(versions)}
    line = " ".join(f"{x(index[v]):.1f},{y(val):.1f}" for v, val in known)
    dots = "".join(
        f'<circle cx="{x(index[v]):.1f}" cy="{y(val):.1f}" r="4"><title>v{v}: {val:.4f}</title>'
        f'</circle><text x="{x(index[v]):.1f}" y="{y(val) - 8:.1f}" text-anchor="middle">'
        f"{val:.3f}</text>"
        for v, val in known
    )
    ticks = "".join(
        f'<text x="{x(i):.1f}" y="{H - PAD + 16}" text-anchor="middle">v{v}</text>'
        for i, v in enumerate(versions)
    )
    return (
        f'<svg id="metric-chart" role="img" aria-label="{escape(title)}" width="{W}" '
        f'height="{H}" viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg" '
        'font-size="11" font-family="sans-serif">'
        f"<title>{escape(title)}</title>"
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#888"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#888"/>'
        f'<text x="4" y="{PAD}">{hi:.3f}</text><text x="4" y="{H - PAD}">{lo:.3f}</text>'
        f'<polyline points="{line}" fill="none" stroke="#1f77b4" stroke-width="2"/>'
        f'<g fill="#1f77b4">{dots}</g>{ticks}'
        f'<text x="{W / 2}" y="14" text-anchor="middle" font-weight="bold">{escape(title)}</text>'
        "</svg>"
    )
