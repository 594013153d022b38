"""Sparklines as inline SVG: a trend drawn by the server, so the page needs no script and
no chart library. Steps without comparisons are gaps, not zeros."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 120, 28


def sparkline(values: Sequence[float | None], *, label: str, floor: float = 0.0, width: int = WIDTH) -> Markup:
    """An SVG line of `values` (oldest first), `width` pixels wide, scaled to the largest of them
    (at least `floor`), with `label` as its accessible name and tooltip; a dash when there is
    nothing to draw."""
    present = [v for v in values if v is not None]
    if not present:
        return Markup('<span class="muted" title="{}">—</span>').format(label)
    top = max(max(present), floor) or 1.0
    if len(values) == 1:  # one step spans the whole range: a level line across it
        values = [values[0], values[0]]
    n = len(values)
    step = (width - 4) / (n - 1)
    points: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            if points[-1]:
                points.append([])
            continue
        x = 2 + i * step
        y = HEIGHT - 3 - (value / top) * (HEIGHT - 6)
        points[-1].append((round(x, 1), round(y, 1)))
    shapes = []
    for run in points:
        if len(run) == 1:
            shapes.append(f'<circle cx="{run[0][0]}" cy="{run[0][1]}" r="2"/>')
        elif run:
            line = " ".join(f"{x},{y}" for x, y in run)
            area = f"{run[0][0]},{HEIGHT - 2} {line} {run[-1][0]},{HEIGHT - 2}"
            shapes.append(f'<polygon class="area" points="{area}"/><polyline points="{line}"/>')
    last = next(run[-1] for run in reversed(points) if run)
    shapes.append(f'<circle class="last" cx="{last[0]}" cy="{last[1]}" r="2"/>')
    flat = " flat" if not any(present) else ""  # nothing but zeros: grey, not alarming
    return Markup(
        f'<svg class="spark{flat}" width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(shapes)}</svg>'
    )
