"""Trend charts as inline SVG, written directly from the chart's numbers (no plotting library).

A metric's chart is its statistical process control (SPC) chart, as Making Data Count draws it:
each month a point coloured by its type (grey common cause, orange concern, blue improvement,
purple neutral), hollow where the month has no type yet (too few months for limits), the mean
and process limits of each rebase group as steps, the plan as the target line, the comparator
as a dotted line, provisional months ringed, and each rebase marked and named. A chart that is
not an SPC chart (a provider's trend) is the plain blue line with its points.

A chart is plain data (`ChartSpec`) in and an `<svg>` string out: an image with its text
alternative as `aria-label` and `<title>`, every internal id prefixed with the chart's key so
many charts share one page. Writing one takes well under a millisecond (drawing it through
matplotlib took 15–30 ms), so every chart of a national month is written in one process.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

# NHS identity colours: blue for the area, red for the plan (the target), dark grey for England.
AREA_COLOUR = "#005EB8"
PLAN_COLOUR = "#DA291C"
ENGLAND_COLOUR = "#425563"
# Making Data Count's point colours (NHS palette), and the SPC lines.
POINT_COLOURS = {
    "common_cause": "#768692",
    "special_cause_improvement": "#005EB8",
    "special_cause_concern": "#ED8B00",
    "special_cause_neutral_high": "#330072",
    "special_cause_neutral_low": "#330072",
}
SPC_LINE_COLOUR = "#4C6272"
LINK_COLOUR = "#AEB7BD"       # the thin line joining a SPC chart's points
AXIS_COLOUR = "#AEB7BD"
GRID_COLOUR = "#E8EDEE"
TICK_COLOUR = "#4C6272"
TEXT_COLOUR = "#212B32"
TICK_EVERY = 3              # label every third month on the x axis
FONT_SIZE, REBASE_FONT_SIZE = 8, 7
# The drawing, in points (the SVG scales to the page width): 6.4 × 2.5 inches, and the plot
# area inside it (left, right, top and bottom edges).
WIDTH, HEIGHT = 460.8, 180.0
LEFT, RIGHT, TOP, BOTTOM = 0.10 * WIDTH, 0.98 * WIDTH, 0.04 * HEIGHT, 0.87 * HEIGHT
TICK_PAD = 4


@dataclass(frozen=True)
class ChartSpec:
    """One 24-month trend: the area's published values with its plan and England."""

    key: str                      # unique on a page; prefixes the SVG's internal ids
    label: str                    # accessible description (aria-label and <title>)
    area_name: str
    y_label: str
    months: tuple[str, ...]       # x-axis labels, oldest first
    values: tuple[float | None, ...]
    plan: tuple[float | None, ...]
    england: tuple[float | None, ...]
    provisional: tuple[bool, ...]
    # SPC (empty for a plain trend): each month's point type, the mean and process limits of its
    # rebase group, and the rebases in the window as (month index, label).
    point_types: tuple[str | None, ...] = ()
    mean: tuple[float | None, ...] = ()
    lpl: tuple[float | None, ...] = ()
    upl: tuple[float | None, ...] = ()
    rebases: tuple[tuple[int, str], ...] = ()
    comparator: str = "England"     # what the dotted line is, named truthfully

    @property
    def is_spc(self) -> bool:
        return bool(self.point_types)

    @property
    def unclassified(self) -> tuple[float | None, ...]:
        """Published values with no point type (too few months for limits): drawn hollow."""
        return tuple(v if t is None else None for v, t in zip(self.values, self.point_types))


def y_ticks(top: float, most: int = 5) -> list[float]:
    """0 and evenly spaced 'nice' steps (1, 2, 2.5 or 5 × 10^k) up to at least `top`."""
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / (most - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _tick_label(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) else f"{v:.6g}"


class _Scale:
    """Month index and value to SVG coordinates. Rates and percentages start at zero so that
    small changes are not exaggerated."""

    def __init__(self, spec: ChartSpec) -> None:
        finite = [v for v in (*spec.values, *spec.plan, *spec.england, *spec.upl)
                  if v is not None and math.isfinite(v)]
        self.ticks = y_ticks(max(finite, default=0.0))
        self.months = len(spec.months)

    def x(self, index: float) -> float:
        # the x axis runs from half a month before the first to half a month after the last
        return LEFT + (index + 0.5) * (RIGHT - LEFT) / max(self.months, 1)

    def y(self, value: float) -> float:
        return BOTTOM - value / self.ticks[-1] * (BOTTOM - TOP)


def _n(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _runs(values: Sequence[float | None]) -> list[list[int]]:
    """Indexes of the consecutive months that have a value (a missing month breaks a line)."""
    runs: list[list[int]] = []
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _path(points: Iterable[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{_n(x)} {_n(y)}" for x, y in points)


def _line(scale: _Scale, values: Sequence[float | None], style: str) -> str:
    """A line through the months that have a value; a month alone draws nothing."""
    d = " ".join(_path((scale.x(i), scale.y(values[i])) for i in run)
                 for run in _runs(values) if len(run) > 1)
    return f'<path d="{d}" {style}/>' if d else ""


def _steps(scale: _Scale, values: Sequence[float | None], style: str) -> str:
    """A value per month as a step: level across its month, changing half-way between months
    (a rebase group's mean or limit), and extending half a month beside a missing one."""
    last = len(values) - 1
    paths = []
    for run in _runs(values):
        start = run[0] - 0.5 if run[0] > 0 else run[0]
        points = [(start, values[run[0]])]
        for i in run[1:]:
            points += [(i - 0.5, values[i - 1]), (i - 0.5, values[i])]
        points.append((run[-1] + 0.5 if run[-1] < last else run[-1], values[run[-1]]))
        paths.append(_path((scale.x(x), scale.y(v)) for x, v in points))
    return f'<path d="{" ".join(paths)}" {style}/>' if paths else ""


def _points(scale: _Scale, values: Sequence[float | None], radius: float, style: str) -> str:
    return "".join(f'<circle cx="{_n(scale.x(i))}" cy="{_n(scale.y(v))}" r="{radius}" {style}/>'
                   for i, v in enumerate(values) if v is not None and math.isfinite(v))


def _axes(spec: ChartSpec, scale: _Scale) -> list[str]:
    """Horizontal gridlines with their values, the left and bottom axis lines, every third
    month's label and the unit. No tick marks: gridlines carry the y scale."""
    parts = []
    for tick in scale.ticks:
        y = _n(scale.y(tick))
        parts.append(f'<path d="M{_n(LEFT)} {y}H{_n(RIGHT)}" stroke="{GRID_COLOUR}" stroke-width="0.6"/>')
        parts.append(f'<text x="{_n(LEFT - TICK_PAD)}" y="{y}" dy="0.35em" text-anchor="end" '
                     f'fill="{TICK_COLOUR}" font-size="{FONT_SIZE}">{escape(_tick_label(tick))}</text>')
    parts.append(f'<path d="M{_n(LEFT)} {_n(TOP)}V{_n(BOTTOM)}H{_n(RIGHT)}" fill="none" '
                 f'stroke="{AXIS_COLOUR}" stroke-width="0.8"/>')
    for i in range(0, len(spec.months), TICK_EVERY):
        parts.append(f'<text x="{_n(scale.x(i))}" y="{_n(BOTTOM + TICK_PAD + FONT_SIZE)}" '
                     f'text-anchor="middle" fill="{TICK_COLOUR}" font-size="{FONT_SIZE}">'
                     f'{escape(spec.months[i])}</text>')
    # the unit beside the widest value label (a character is about 0.6 of the font size wide)
    widest = max(len(_tick_label(t)) for t in scale.ticks)
    x, middle = _n(LEFT - TICK_PAD - widest * 0.6 * FONT_SIZE - 6), _n((TOP + BOTTOM) / 2)
    parts.append(f'<text x="{x}" y="{middle}" transform="rotate(-90 {x} {middle})" '
                 f'text-anchor="middle" fill="{TEXT_COLOUR}" font-size="{FONT_SIZE}">'
                 f'{escape(spec.y_label)}</text>')
    return parts


def _stroke(colour: str, width: float, dashes: tuple[float, ...] = ()) -> str:
    dash = f' stroke-dasharray="{",".join(_n(d) for d in dashes)}"' if dashes else ""
    return f'fill="none" stroke="{colour}" stroke-width="{width}"{dash}'


def _data(spec: ChartSpec, scale: _Scale) -> list[str]:
    """The series, bottom to top. SPC: provisional rings under the plan, comparator, mean and
    limits, then the thin link line and the points over them (so a ring shows round its point).
    A plain trend: plan and comparator, the area's line with its points, rings on top."""
    rings = _points(scale, [v if p else None for v, p in zip(spec.values, spec.provisional)],
                    2.5, f'fill="#FFFFFF" stroke="{AREA_COLOUR}" stroke-width="1.2"')
    plan = _line(scale, spec.plan, _stroke(PLAN_COLOUR, 1.5, (5.55, 2.4)))
    comparator = _line(scale, spec.england, _stroke(ENGLAND_COLOUR, 1.2, (1.2, 1.98)))
    if not spec.is_spc:
        return [plan, comparator, _line(scale, spec.values, _stroke(AREA_COLOUR, 2)),
                _points(scale, spec.values, 1.5, f'fill="{AREA_COLOUR}" stroke="{AREA_COLOUR}"'),
                rings]
    limits = _stroke(SPC_LINE_COLOUR, 0.9, (3.6, 1.8))
    parts = [rings, plan, comparator, _steps(scale, spec.mean, _stroke(SPC_LINE_COLOUR, 1.2)),
             _steps(scale, spec.lpl, limits), _steps(scale, spec.upl, limits),
             _line(scale, spec.values, _stroke(LINK_COLOUR, 1.2))]
    parts += [_points(scale, [v if t == kind else None for v, t in zip(spec.values, spec.point_types)],
                      2.25, f'fill="{colour}" stroke="{colour}"')
              for kind, colour in POINT_COLOURS.items()]
    parts.append(_points(scale, spec.unclassified, 2.25,
                         f'fill="#FFFFFF" stroke="{POINT_COLOURS["common_cause"]}" stroke-width="1.2"'))
    return parts


def _rebases(spec: ChartSpec, scale: _Scale) -> list[str]:
    """A dotted line where each rebase group starts, named at the top of the chart."""
    parts = []
    baseline = _n(TOP + 0.02 * (BOTTOM - TOP) + 0.8 * REBASE_FONT_SIZE)
    for index, label in spec.rebases:
        x = scale.x(index - 0.5)
        parts.append(f'<path d="M{_n(x)} {_n(TOP)}V{_n(BOTTOM)}" {_stroke(SPC_LINE_COLOUR, 1, (1, 1.65))}/>')
        parts.append(f'<text x="{_n(scale.x(index - 0.4))}" y="{baseline}" '
                     f'fill="{TEXT_COLOUR}" font-size="{REBASE_FONT_SIZE}">{escape(label)}</text>')
    return parts


def render_svg(spec: ChartSpec) -> str:
    """The chart as an inline `<svg>` element with role, label and page-unique ids."""
    scale = _Scale(spec)
    clip = f"{spec.key}-plot"
    label = escape(spec.label, quote=True)
    return "".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(WIDTH)} {_n(HEIGHT)}" '
        f'class="chart-svg" role="img" aria-label="{label}" focusable="false">',
        f"<title>{escape(spec.label)}</title>",
        f'<defs><clipPath id="{clip}"><rect x="{_n(LEFT)}" y="{_n(TOP)}" '
        f'width="{_n(RIGHT - LEFT)}" height="{_n(BOTTOM - TOP)}"/></clipPath></defs>',
        *_axes(spec, scale),
        f'<g clip-path="url(#{clip})">', *_data(spec, scale), "</g>",
        *_rebases(spec, scale),
        "</svg>",
    ])


def render_charts(specs: Sequence[ChartSpec]) -> dict[str, str]:
    """Each chart written once: {spec.key: svg} for every distinct key."""
    return {spec.key: render_svg(spec) for spec in {spec.key: spec for spec in specs}.values()}
