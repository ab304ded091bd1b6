"""Server-side SVG charts, pure: plain numbers in, an ``<svg>`` string out.

No JavaScript and nothing fetched: the page works offline and prints. Charts are 360
units wide (a phone's width) and scale with their box; every row can link to the records
behind it; labels are escaped.
"""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 360
ROW = 44          # label line + bar
BAR = 14
BRAND, PLAN, MUTED, TRACK = "#1f5f8b", "#b3261e", "#5f6b7a", "#e3e8ee"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str            # what is printed at the bar's end
    href: str | None = None
    mark: float | None = None  # a target (a plan) drawn as a line across the bar


def _svg(height: int, title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="14">'
        f'<title>{escape(title)}</title>{"".join(body)}</svg>')


def bars(items: list[Bar], title: str, *, scale: float | None = None) -> Markup:
    """One horizontal bar per item, longest = the largest value (or the largest mark)."""
    if not items:
        return _svg(24, title, [f'<text x="0" y="16" fill="{MUTED}">—</text>'])
    top = scale or max([b.value for b in items] + [b.mark or 0 for b in items]) or 1
    track = WIDTH - 104
    body = []
    for i, b in enumerate(items):
        y = i * ROW
        length = max(0.0, min(1.0, b.value / top)) * track
        row = [f'<text x="0" y="{y + 15}" fill="#1b2430">{escape(_clip(b.label, 44))}</text>',
               f'<rect x="0" y="{y + 22}" width="{track}" height="{BAR}" rx="3" fill="{TRACK}"/>',
               f'<rect class="bar" x="0" y="{y + 22}" width="{length:.1f}" height="{BAR}" rx="3" fill="{BRAND}"/>',
               f'<text x="{track + 6}" y="{y + 34}" fill="#1b2430" font-weight="600">{escape(b.text)}</text>']
        if b.mark is not None and b.mark > 0:
            x = max(0.0, min(1.0, b.mark / top)) * track
            row.append(f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{y + 18}" y2="{y + 40}" '
                       f'stroke="{PLAN}" stroke-width="3"/>')
        inner = "".join(row)
        if b.href:
            inner = f'<a href="{escape(b.href)}">{inner}</a>'
        body.append(f'<g class="row">{inner}</g>')
    return _svg(len(items) * ROW, title, body)


def funnel(steps: list[tuple[str, int, str | None]], title: str) -> Markup:
    """Doors → contacts → leads → contracts → activations, each with its share of the step before."""
    items = []
    previous = None
    for label, value, href in steps:
        share = f" · {_pct(value / previous)}" if previous else ""
        items.append(Bar(label, value, f"{value}{share}", href))
        previous = value
    return bars(items, title)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.0f}%" if fraction >= 0.1 or fraction == 0 else f"{fraction * 100:.1f}%"


def percent(fraction: float | None) -> str:
    return "—" if fraction is None else _pct(fraction)


def _clip(label: str, length: int = 52) -> str:
    label = str(label)
    return label if len(label) <= length else label[: length - 1] + "…"
