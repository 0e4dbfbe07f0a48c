"""Trend charts as inline SVG, drawn with matplotlib's SVG backend (no pyplot, no files).

A metric's chart is its statistical process control (SPC) chart, as Making Data Count draws it:
each month a point coloured by its type (grey common cause, orange concern, blue improvement,
purple neutral), the mean and process limits of each rebase group as steps, the plan as the
target line, the comparator as a dotted line, and each rebase marked and named.

Charts are the slow part of rendering (about 15–30 ms each), so each process keeps one figure and
only swaps the data between charts, and `render_charts` spreads them over a bounded process pool.
A chart is plain data (`ChartSpec`) in and an `<svg>` string out, so it pickles across processes.
"""
from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from html import escape
from multiprocessing import get_context

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

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
FIGURE_SIZE = (6.4, 2.5)    # inches; the SVG scales to the page width
TICK_EVERY = 3              # label every third month on the x axis
_RC = {
    "svg.fonttype": "none",            # text stays text: small, searchable, styled by the page
    "svg.hashsalt": "joinedup",        # stable clip-path ids, so output is reproducible
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib, so layout never hunts for fonts
    "font.size": 8,
    "axes.edgecolor": "#AEB7BD",
    "axes.labelcolor": "#212B32",
    "xtick.color": "#4C6272",
    "ytick.color": "#4C6272",
}
_FONT_FAMILY = re.compile(r"font-family: [^;\"]*;? ?")
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_GLOBAL_STYLE = re.compile(r"<style type=\"text/css\">.*?</style>", re.S)
_SIZE = re.compile(r' width="[\d.]+pt" height="[\d.]+pt"')


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


class _Canvas:
    """One reusable figure: building axes and ticks costs more than drawing the lines."""

    def __init__(self) -> None:
        with matplotlib.rc_context(_RC):
            self.figure = Figure(figsize=FIGURE_SIZE)
            self.figure.subplots_adjust(left=0.1, right=0.98, top=0.96, bottom=0.13)
            self.ax = self.figure.add_subplot()
            self._lines()
            self._style_axes()
        self.canvas = FigureCanvasSVG(self.figure)

    def _lines(self) -> None:
        ax = self.ax
        (self.area,) = ax.plot([], [], color=AREA_COLOUR, lw=2, marker="o", ms=3)
        (self.open,) = ax.plot([], [], ls="none", marker="o", ms=5, mfc="white",
                               mec=AREA_COLOUR, mew=1.2)
        (self.plan,) = ax.plot([], [], color=PLAN_COLOUR, lw=1.5, ls="--")
        (self.england,) = ax.plot([], [], color=ENGLAND_COLOUR, lw=1.2, ls=":")
        # SPC: steps change at the month a rebase group starts
        (self.mean,) = ax.plot([], [], color=SPC_LINE_COLOUR, lw=1.2, drawstyle="steps-mid")
        (self.lpl,) = ax.plot([], [], color=SPC_LINE_COLOUR, lw=0.9, ls=(0, (4, 2)),
                              drawstyle="steps-mid")
        (self.upl,) = ax.plot([], [], color=SPC_LINE_COLOUR, lw=0.9, ls=(0, (4, 2)),
                              drawstyle="steps-mid")
        (self.link,) = ax.plot([], [], color=LINK_COLOUR, lw=1.2)
        self.points = {kind: ax.plot([], [], ls="none", marker="o", ms=4.5, color=colour,
                                     mec=colour)[0]
                       for kind, colour in POINT_COLOURS.items()}
        (self.unclassified,) = ax.plot([], [], ls="none", marker="o", ms=4.5, mfc="white",
                                       mec=POINT_COLOURS["common_cause"], mew=1.2)
        self.marks: list = []       # a chart's rebase lines and labels, removed before the next

    def _style_axes(self) -> None:
        ax = self.ax
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#E8EDEE", lw=0.6)
        ax.set_axisbelow(True)
        # No tick marks: gridlines carry the y scale, and each mark is one more path to draw.
        ax.tick_params(length=0, pad=4)

    def draw(self, spec: ChartSpec) -> str:
        """The chart as an SVG document; call inside `matplotlib.rc_context(_RC)`."""
        self._set_data(spec)
        buffer = io.StringIO()
        self.canvas.print_svg(buffer, metadata={"Date": None})
        return buffer.getvalue()

    def _set_data(self, spec: ChartSpec) -> None:
        x = list(range(len(spec.months)))
        self._set_spc(spec, x)
        self.open.set_data(x, _nan(v if p else None for v, p in zip(spec.values, spec.provisional)))
        self.plan.set_data(x, _nan(spec.plan))
        self.england.set_data(x, _nan(spec.england))
        self.ax.set_xticks(x[::TICK_EVERY], spec.months[::TICK_EVERY])
        self.ax.set_xlim(-0.5, len(x) - 0.5)
        self.ax.set_ylabel(spec.y_label)
        self._rescale(spec)

    def _set_spc(self, spec: ChartSpec, x: list[int]) -> None:
        """Points coloured by type with SPC lines, or (no SPC) the plain blue trend line."""
        for mark in self.marks:
            mark.remove()
        self.marks = []
        spc = spec.is_spc
        shown, hidden = (self.link, self.area) if spc else (self.area, self.link)
        shown.set_data(x, _nan(spec.values))
        hidden.set_data([], [])
        for kind, line in self.points.items():
            line.set_data(*((x, _nan(v if t == kind else None
                                     for v, t in zip(spec.values, spec.point_types))) if spc else ([], [])))
        self.unclassified.set_data(*((x, _nan(spec.unclassified)) if spc else ([], [])))
        for line, values in ((self.mean, spec.mean), (self.lpl, spec.lpl), (self.upl, spec.upl)):
            line.set_data(*((x, _nan(values)) if spc else ([], [])))
        for index, label in spec.rebases:
            self.marks.append(self.ax.axvline(index - 0.5, color=SPC_LINE_COLOUR, lw=1, ls=":"))
            self.marks.append(self.ax.text(index - 0.4, 0.98, label, transform=self.ax.get_xaxis_transform(),
                                           va="top", ha="left", fontsize=7, color="#212B32"))

    def _rescale(self, spec: ChartSpec) -> None:
        # Rates and percentages start at zero so that small changes are not exaggerated.
        # Ticks are computed here rather than by a matplotlib locator, which is slower.
        finite = [v for v in (*spec.values, *spec.plan, *spec.england, *spec.upl) if v is not None]
        ticks = y_ticks(max(finite, default=0.0))
        self.ax.set_yticks(ticks, [_tick_label(t) for t in ticks])
        self.ax.set_ylim(0, ticks[-1])


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


def _nan(values) -> list[float]:
    return [math.nan if v is None else v for v in values]


_local = threading.local()


def render_svg(spec: ChartSpec) -> str:
    """The chart as an inline `<svg>` element with role, label and page-unique ids."""
    return _render_batch([spec])[0]


def _render_batch(specs: Sequence[ChartSpec]) -> list[str]:
    # One rc_context per batch: entering it copies every rcParam, a tenth of a chart's time.
    with matplotlib.rc_context(_RC):
        canvas = getattr(_local, "canvas", None)
        if canvas is None:
            canvas = _local.canvas = _Canvas()
        return [_inline(canvas.draw(spec), spec) for spec in specs]


def _inline(svg: str, spec: ChartSpec) -> str:
    svg = _METADATA.sub("", _PROLOGUE.sub("", svg, count=1), count=1)
    svg = _GLOBAL_STYLE.sub("", svg)          # its `*{...}` rule would leak into the page
    svg = _FONT_FAMILY.sub("", svg)           # the page's CSS sets the font
    svg = _prefix_ids(svg, spec.key)
    label = escape(spec.label, quote=True)
    svg = _SIZE.sub(f' class="chart-svg" role="img" aria-label="{label}" focusable="false"',
                    svg, count=1)
    head_end = svg.index(">") + 1
    return f"{svg[:head_end]}<title>{escape(spec.label)}</title>{svg[head_end:]}".strip()


def _prefix_ids(svg: str, key: str) -> str:
    """Many charts share one page, so each chart's ids get its own prefix."""
    svg = re.sub(r' id="([^"]+)"', rf' id="{key}-\1"', svg)
    svg = svg.replace("url(#", f"url(#{key}-")
    return svg.replace('xlink:href="#', f'xlink:href="#{key}-')


class ChartRenderer:
    """Renders charts once each; with workers > 1, in a bounded process pool kept open
    across calls (starting a worker and importing matplotlib costs about a second)."""

    BATCHES_PER_WORKER = 4   # small batches keep the workers evenly loaded

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ChartRenderer:
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def render(self, specs: Sequence[ChartSpec]) -> dict[str, str]:
        """{spec.key: svg} for every distinct key."""
        unique = list({spec.key: spec for spec in specs}.values())
        if self.workers == 1 or len(unique) < 2 * self.workers:
            return dict(zip((spec.key for spec in unique), _render_batch(unique)))
        n = self.workers * self.BATCHES_PER_WORKER
        batches = [b for b in (unique[i::n] for i in range(n)) if b]
        results = self._executor().map(_render_batch, batches)
        return {spec.key: svg for batch, svgs in zip(batches, results)
                for spec, svg in zip(batch, svgs)}

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the parent holds a DuckDB connection and its threads.
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=get_context("spawn"))
        return self._pool
