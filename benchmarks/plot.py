"""The SVG plot of a benchmark run: wall time against org size, one line per way of syncing."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

_SERIES = (
    ("first", "dagster asset materialize --select '*', first sync", "#1f77b4"),
    ("repeat", "dagster asset materialize --select '*', repeat sync", "#2ca02c"),
)
_REFERENCE = ("sequential fetch only", "#d62728")


def _s(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _series(sizes: list[dict[str, Any]]) -> list[tuple[str, str, list[float]]]:
    series = [
        (label, colour, [r["runs"][kind]["wall_seconds"] for r in sizes])
        for kind, label, colour in _SERIES
        if all(kind in r["runs"] for r in sizes)
    ]
    if all("reference" in r for r in sizes):
        series.append((*_REFERENCE, [r["reference"]["seconds"] for r in sizes]))
    return series


def svg(results: dict[str, Any]) -> str:
    """Wall time against org size, the materializations and the sequential fetch, standalone."""
    sizes = results["sizes"]
    series = _series(sizes)
    width, height, left, bottom, top, right = 600, 380, 70, 50, 30, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    max_users = max(r["org"]["users"] for r in sizes)
    max_seconds = max(max(values) for _, _, values in series)
    y_step = next(step for step in (5, 10, 20, 25, 50, 100, 200, 500) if max_seconds / step <= 8)
    y_max = y_step * (int(max_seconds // y_step) + 1)

    def x(users: float) -> float:
        return left + plot_w * users / max_users

    def y(seconds: float) -> float:
        return top + plot_h * (1 - seconds / y_max)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">Wall time against org size '
        f"({results['settings']['latency_ms']:.0f} ms latency)</text>",
    ]
    for tick in range(0, int(y_max) + 1, y_step):
        parts.append(
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" '
            'stroke="#ddd"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick} s</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="black"/>'
    )
    for result in sizes:
        users = result["org"]["users"]
        parts.append(
            f'<text x="{x(users):.1f}" y="{top + plot_h + 18}" text-anchor="middle">'
            f"{users // 1000}k</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">users '
        "(departments = users / 10)</text>"
    )
    highest = [max(values[i] for _, _, values in series) for i in range(len(sizes))]
    lowest = [min(values[i] for _, _, values in series) for i in range(len(sizes))]
    for index, (label, colour, values) in enumerate(series):
        points = " ".join(
            f"{x(r['org']['users']):.1f},{y(v):.1f}" for r, v in zip(sizes, values, strict=True)
        )
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for position, (result, value) in enumerate(zip(sizes, values, strict=True)):
            cx, cy = x(result["org"]["users"]), y(value)
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}"/>')
            # Only the highest and the lowest value at a size are labelled (above and below its
            # point); the materializations' two lines lie too close together for two labels.
            if value >= highest[position]:
                dy = -8.0
            elif value <= lowest[position]:
                dy = 16.0
            else:
                continue
            parts.append(
                f'<text x="{cx + 6:.1f}" y="{cy + dy:.1f}" fill="{colour}">{_s(value)} s</text>'
            )
        legend_y = top + 16 + 18 * index
        parts.append(
            f'<line x1="{left + 12}" y1="{legend_y - 4}" x2="{left + 32}" y2="{legend_y - 4}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{left + 38}" y="{legend_y}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
