"""Render the monthly integration-progress reports.

For each month: one page per HWB, one per ICB (its HWBs side by side), the month's figures as
CSV and JSON, and one index of every page and month. Pages are self-contained HTML (styles and
SVG charts inline). Everything published goes through flows.publish.sdc, and `sdc.check_publishable`
refuses a page or export before anything of that month is written.

Pages also show the hospital providers of the area's ICB against England on the provider-level
measures (catalogue `rollup: provider`), for the month and, for percentages, as trends. Those are
NHS England's published statistics by organisation and are shown as published (sdc.EXEMPT_ROLLUPS).

Each metric's chart is its SPC chart (metric_spc: Making Data Count's rules), and the summary
carries its variation and assurance icons. The comparator line is labelled with what it is:
England only where the figures cover England (`comparator`).

Reads only metric_values, metric_catalog, metric_plan_variance, metric_spc, stg_changes, orgs,
load_log, quarantine, deliveries and data_quality. One function builds the context of each page kind
(`hwb_page_context`, `icb_page_context`, `index_context`); the templates only lay it out.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from flows import ENGLAND_CODE, TEMPLATES_DIR, paths, units
from flows.db import relation_exists
from flows.errors import UnsafeOutputPath
from flows.months import add_months, financial_year_start, month_code, month_range
from flows.publish import sdc
from flows.publish.charts import ChartRenderer, ChartSpec
from flows.publish.page_cache import PageCache
from flows.settings import SpcSettings

log = logging.getLogger("joinedup.report")

WINDOW_MONTHS = 24            # months shown in each trend chart and table
# Starting chart worker processes costs about a second; below this many charts one process wins.
POOL_MIN_CHARTS = 200
AMBER_TOLERANCE = 0.05        # amber: worse than plan by at most 5% of the plan value
ORG_AREA_TYPE = {"HWB": "hwb", "ICB": "icb", "PROVIDER": "provider"}
PROVIDER_ROLLUP = "provider"  # metric_catalog.rollup of measures published by hospital provider
AREA_TYPE_ORDER = {"england": 0, "icb": 1, "hwb": 2, "provider": 3}
MEASURE_LABEL = {
    "unknown_residence_spells": "Spells with unknown residence",
    "out_of_area_spells": "Spells resident outside the areas covered",
    "invalid_nhs_numbers": "Invalid NHS numbers",
}
RAG_RULE = (
    "Green: on plan or better. Amber: worse than plan by no more than "
    f"{AMBER_TOLERANCE:.0%} of the plan value. Red: worse than plan by more than "
    f"{AMBER_TOLERANCE:.0%} of the plan value. 'Worse' means higher where lower is better "
    "(for example admissions) and lower where higher is better (for example discharges to "
    "usual residence). The month's published (rounded) figure is compared with its plan; "
    "no status is given where there is no plan or the figure is suppressed."
)
SDC_RULE = (
    f"Below England level, counts from 1 to {sdc.SUPPRESSION_THRESHOLD} are shown as * and other "
    f"counts are rounded to the nearest {sdc.ROUNDING_MULTIPLE}. Rates, percentages and averages "
    "are calculated from the rounded counts and "
    "are not shown (*) where their numerator or denominator is. Differences from plan and their "
    "cost are calculated from rounded figures. England figures are not rounded."
)
PROVIDER_RULE = (
    "Figures for individual hospital providers are NHS England's published statistics for each "
    "organisation: aggregate figures already in the public domain, not counts of patients living "
    "in an area. They are shown as published, without suppression or rounding."
)
EXPORT_COLUMNS = (
    "period_month", "area_type", "area_code", "area_name", "metric_id", "metric_title", "unit",
    "numerator", "denominator", "value", "plan_value", "variance", "variance_count",
    "variance_cost", "ytd_variance_count", "ytd_variance_cost", "rag", "status",
    "spc_mean", "spc_lower_limit", "spc_upper_limit", "spc_point_type", "spc_rebase_group",
    "spc_variation", "spc_assurance",
)
# England's health and wellbeing boards are its upper-tier local authorities: 151 from 2019, 153
# since April 2023. An orgs file listing at least this many English HWBs covers England, and only
# then is the total over the areas loaded labelled England.
ENGLAND_HWB_MIN = 151
ALL_AREAS_LABEL = "All areas in this report"


# --- what the tables hold ---------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    metric_id: str
    title: str
    unit: str
    higher_is_better: bool
    numerator_label: str
    denominator_label: str
    unit_cost: float | None
    definition: str
    official_id: str | None
    source: str | None
    sql_file: str | None
    sort_order: int
    rollup: str = "hwb"           # metric_catalog.rollup: hwb (by residence) or provider

    @property
    def by_provider(self) -> bool:
        return self.rollup == PROVIDER_ROLLUP

    @property
    def scale(self) -> int | None:
        return units.scale(self.unit)

    @property
    def unit_label(self) -> str:
        return units.label(self.unit)

    @property
    def anchor(self) -> str:
        return "metric-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.metric_id)


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    type: str                 # hwb | icb | england | provider
    parent: str | None = None

    @property
    def href(self) -> str:
        return f"{self.code}.html"


@dataclass(frozen=True)
class Source:
    """One metric_values row with its metric_plan_variance row (unsuppressed: never published)."""

    numerator: float | None
    denominator: float | None
    value: float | None
    plan_value: float | None
    status: str | None
    variance: float | None = None
    variance_count: float | None = None
    variance_cost: float | None = None
    ytd_variance_count: float | None = None
    ytd_variance_cost: float | None = None


@dataclass
class ReportData:
    """Everything the pages of the requested months need, read once from the database."""

    metrics: list[Metric]
    areas: dict[str, Area]
    sources: dict[tuple[str, date, str], Source]      # (area_code, month, metric_id)
    present: dict[date, dict[str, str]]                # every month: area code -> area type
    deliveries: list[dict]
    quarantined: list[dict]
    rejected: list[dict]
    quality: list[dict]
    spc: dict[tuple[str, date, str], SpcPoint] = field(default_factory=dict)  # (area, month, metric)
    changes: list[dict] = field(default_factory=list)       # stg_changes rows
    spc_settings: SpcSettings = field(default_factory=SpcSettings)
    covers_england: bool = False      # orgs lists every HWB in England: the total is England's
    _figures: dict = field(default_factory=dict)
    # joined-up care (extracts 3a): the linked metrics and each council's linkage by month
    linked_metric_ids: frozenset[str] = frozenset()
    linkage: list[dict] = field(default_factory=list)

    def figure(self, area: Area, month: date, metric: Metric) -> Figure:
        key = (area.code, month, metric.metric_id)
        if key not in self._figures:
            self._figures[key] = publish_figure(self, area, month, metric)
        return self._figures[key]


# --- published figures --------------------------------------------------------------------------

@dataclass(frozen=True)
class Rag:
    code: str          # green | amber | red | none
    label: str
    symbol: str


RAG = {
    "green": Rag("green", "On plan or better", "✓"),
    "amber": Rag("amber", "Slightly worse than plan", "!"),
    "red": Rag("red", "Worse than plan", "✗"),
    "none": Rag("none", "No plan", "–"),
    "suppressed": Rag("none", "Not assessed (small numbers)", "*"),
    "no_figure": Rag("none", "No figure", "–"),
}


@dataclass(frozen=True)
class Against:
    """How far the month is from plan: in the metric's unit, and as a count where it is one."""

    variance: float | None
    count: sdc.Count | None
    unit: str
    numerator_label: str
    planned: bool
    suppressed: bool


@dataclass(frozen=True)
class Change:
    """Change between two published values: relative (%) or, for percentages, in points."""

    amount: float | None
    points: bool


@dataclass(frozen=True)
class Figure:
    """Everything published about one area, month and metric."""

    cell: sdc.Cell
    plan: float | None
    status: str | None
    against: Against
    rag: Rag
    cost: sdc.Cost
    ytd_variance_count: sdc.Count
    ytd_cost: sdc.Cost


@dataclass(frozen=True)
class SpcPoint:
    """One metric_spc row (computed from the unrounded values; published through `publish_spc`)."""

    rebase_group: int
    is_used: bool
    used_months: int | None
    min_points: int | None
    mean: float | None
    lpl: float | None
    upl: float | None
    point_type: str | None
    variation: str | None
    assurance: str | None
    prior_mean: float | None
    prior_point_type: str | None


@dataclass(frozen=True)
class Icon:
    """A Making Data Count icon: drawn as inline SVG, always with its text label."""

    code: str
    letter: str
    label: str


VARIATION_ICONS = {
    "common_cause": Icon("common", "~", "Common cause"),
    "special_cause_improvement_high": Icon("improvement", "H", "Improvement (high)"),
    "special_cause_improvement_low": Icon("improvement", "L", "Improvement (low)"),
    "special_cause_concern_high": Icon("concern", "H", "Concern (high)"),
    "special_cause_concern_low": Icon("concern", "L", "Concern (low)"),
    "special_cause_neutral_high": Icon("neutral", "H", "Special cause (high)"),
    "special_cause_neutral_low": Icon("neutral", "L", "Special cause (low)"),
}
ASSURANCE_ICONS = {
    "consistent_pass": Icon("pass", "P", "Consistently passes"),
    "consistent_fail": Icon("fail", "F", "Consistently fails"),
    "inconsistent": Icon("inconsistent", "?", "Hit and miss"),
}
POINT_LABEL = {
    "common_cause": "common cause",
    "special_cause_improvement": "special cause, improvement",
    "special_cause_concern": "special cause, concern",
    "special_cause_neutral_high": "special cause, high",
    "special_cause_neutral_low": "special cause, low",
}


@dataclass(frozen=True)
class PublishedSpc:
    """What is published of a month's SPC: nothing of a month whose figure is suppressed."""

    mean: float | None
    lpl: float | None
    upl: float | None
    point_type: str | None
    rebase_group: int | None
    variation: Icon | None
    variation_code: str | None
    assurance: Icon | None
    assurance_code: str | None
    why_not: str | None          # why there are no limits, icons or point type


def publish_figure(data: ReportData, area: Area, month: date, metric: Metric) -> Figure:
    """Apply disclosure control to one cell; below England every number derives from rounded
    counts, except a provider's figure on a measure the catalogue exempts (`_exempt`)."""
    src = data.sources.get((area.code, month, metric.metric_id)) or Source(None, None, None, None, None)
    national = area.type == "england"
    exempt = _exempt(area, metric)
    cell = sdc.publish_cell(src.numerator, src.denominator, scale=metric.scale,
                            national=national, value=src.value, exempt=exempt)
    count = sdc.publish_difference(src.variance_count, suppressed=cell.suppressed, national=national,
                                   exempt=exempt)
    ytd = _ytd_cell(data, area, month, metric)
    ytd_count = sdc.publish_difference(src.ytd_variance_count, suppressed=ytd.suppressed,
                                       national=national, exempt=exempt)
    return Figure(
        cell=cell, plan=src.plan_value, status=src.status,
        against=Against(_variance(src, cell, national),
                        count if src.variance_count is not None else None, metric.unit,
                        metric.numerator_label, planned=src.plan_value is not None,
                        suppressed=cell.suppressed),
        rag=rag_status(cell, src.plan_value, metric.higher_is_better),
        cost=_cost(count, src.variance_cost, metric, national),
        ytd_variance_count=ytd_count,
        ytd_cost=_cost(ytd_count, src.ytd_variance_cost, metric, national),
    )


def _exempt(area: Area, metric: Metric) -> str | None:
    """The metric id when the figure is a provider's on a measure published by provider
    (sdc.EXEMPT_ROLLUPS): shown as published. ICB and HWB figures are controlled as ever."""
    return metric.metric_id if area.type == "provider" and metric.rollup in sdc.EXEMPT_ROLLUPS else None


def _variance(src: Source, cell: sdc.Cell, national: bool) -> float | None:
    if national and src.variance is not None:
        return src.variance
    if cell.value is None or src.plan_value is None:
        return None
    return cell.value - src.plan_value


def _cost(count: sdc.Count | None, source_cost: float | None, metric: Metric,
          national: bool) -> sdc.Cost:
    if count is None:
        return sdc.Cost(None)
    if national:
        return sdc.national_cost(source_cost)
    return sdc.publish_cost(count, metric.unit_cost if source_cost is not None else None)


def _ytd_cell(data: ReportData, area: Area, month: date, metric: Metric) -> sdc.Cell:
    """The financial year to date's counts, to decide whether its difference from plan shows."""
    rows = [s for m in month_range(financial_year_start(month), month)
            if (s := data.sources.get((area.code, m, metric.metric_id))) and s.numerator is not None]
    return sdc.publish_cell(sum(s.numerator for s in rows) if rows else None,
                            sum(s.denominator or 0 for s in rows) if rows else None,
                            scale=metric.scale, national=area.type == "england",
                            exempt=_exempt(area, metric))


def rag_status(cell: sdc.Cell, plan: float | None, higher_is_better: bool) -> Rag:
    """Green on plan or better; amber worse by ≤ AMBER_TOLERANCE of plan; red beyond that."""
    if cell.suppressed:
        return RAG["suppressed"]
    if cell.value is None:
        return RAG["no_figure"]
    if plan is None:
        return RAG["none"]
    shortfall = (plan - cell.value) if higher_is_better else (cell.value - plan)
    if shortfall <= 0:
        return RAG["green"]
    return RAG["amber"] if shortfall <= AMBER_TOLERANCE * abs(plan) else RAG["red"]


def change(now: sdc.Cell, before: sdc.Cell, unit: str) -> Change:
    """Percentages change in points; rates and days change relative to the earlier value."""
    points = unit == "percent"
    if now.value is None or before.value is None:
        return Change(None, points)
    if points:
        return Change(now.value - before.value, True)
    if before.value == 0:
        return Change(None, False)
    return Change(100 * (now.value - before.value) / before.value, False)


# --- months ----------------------------------------------------------------------------------------

def window(month: date) -> list[date]:
    """The WINDOW_MONTHS months ending with `month`, oldest first."""
    return month_range(add_months(month, 1 - WINDOW_MONTHS), month)




# --- formatting (registered as Jinja filters; also used for generated sentences) -------------------

def month_name(month: date) -> str:
    return month.strftime("%B %Y")


def month_short(month: date) -> str:
    return month.strftime("%b %Y")


def thousands(n: float | None, digits: int = 0) -> str:
    return "–" if n is None else f"{n:,.{digits}f}"


def format_count(c: sdc.Count | None) -> str:
    if c is None:
        return "–"
    if not isinstance(c, sdc.Count):
        raise TypeError(f"count filter got {type(c).__name__}; counts must pass through flows.publish.sdc")
    if c.suppressed:
        return sdc.SUPPRESSED
    return thousands(c.n, 0 if c.n is None or float(c.n).is_integer() else 1)


def format_value(v: sdc.Cell | float | None, unit: str, with_rate_unit: bool = False,
                 bare: bool = False) -> str:
    """A metric value in its unit: '1,234.5' (or '1,234.5 per 100,000'), '42.1%', '5.2 days'
    ('5.2' when `bare`, under a column header that names the unit); '*' suppressed; '–' none."""
    if isinstance(v, sdc.Cell):
        if v.suppressed:
            return sdc.SUPPRESSED
        v = v.value
    if v is None:
        return "–"
    if unit == "count":
        return f"{v:,.0f}"
    rate = f"{v:,.1f} per 100,000" if with_rate_unit and unit == "per_100k" else f"{v:,.1f}"
    return {"percent": f"{v:.1f}%", "days": f"{v:,.1f}{'' if bare else ' days'}"}.get(unit, rate)


def format_change(ch: Change, digits: int = 1) -> str:
    if ch.amount is None:
        return "not available"
    amount = round(ch.amount, digits)
    if amount == 0:
        return "no change"
    size = f"{abs(amount):,.{digits}f}" + (" percentage points" if ch.points else "%")
    return f"{'up' if amount > 0 else 'down'} {size}"


def format_against(a: Against, short: bool = False) -> str:
    """'120 admissions above plan', '2.1 percentage points below plan', 'on plan', 'no plan';
    `short` leaves out the count's label ('120 above plan') where a column header gives it."""
    if not a.planned:
        return "no plan"
    if a.suppressed:
        return sdc.SUPPRESSED
    if a.count is not None and a.count.n is not None:
        label = "" if short else f" {a.numerator_label}"
        return _above_below(a.count.n, f"{abs(a.count.n):,.0f}{label}")
    if a.variance is None:
        return "–"
    size = abs(a.variance)
    words = {"percent": f"{size:.1f} percentage points", "days": f"{size:,.1f} days",
             "per_100k": f"{size:,.1f} per 100,000",
             "count": f"{size:,.0f} {a.numerator_label}"}.get(a.unit, f"{size:,.1f}")
    return _above_below(round(a.variance, 1), words)


def _above_below(n: float, size: str) -> str:
    if n == 0:
        return "on plan"
    return f"{size} {'above' if n > 0 else 'below'} plan"


def format_cost(c: sdc.Cost) -> str:
    if c.suppressed:
        return sdc.SUPPRESSED
    if c.amount is None:
        return "–"
    if round(c.amount) == 0:
        return "£0"
    return f"£{abs(c.amount):,.0f} {'over' if c.amount > 0 else 'under'} plan"


def sentence(text: str) -> str:
    """First letter upper case, the rest as written ('delayed days' -> 'Delayed days')."""
    return text[:1].upper() + text[1:]


FILTERS = {
    "sentence": sentence, "month_name": month_name, "month_short": month_short, "month_code": month_code,
    "thousands": thousands, "count": format_count, "metric_value": format_value,
    "change": format_change, "against_plan": format_against, "cost": format_cost,
    "spc_point": lambda t: POINT_LABEL.get(t, "–"),
}


def reading(metric: Metric, month: date, fig: Figure, year_ago: Figure) -> str:
    """One plain-English line generated from the published numbers, e.g. '1,234.5 per 100,000
    in November 2025: up 4% on November 2024, 120 admissions above plan.'"""
    text = _reading(metric, month, fig, year_ago)
    return sentence(text) + (" (provisional)." if fig.status == "provisional" else ".")


def _reading(metric: Metric, month: date, fig: Figure, year_ago: Figure) -> str:
    cell, when = fig.cell, month_name(month)
    if cell.suppressed:
        small = metric.numerator_label if cell.numerator.suppressed else metric.denominator_label
        return f"not published for {when}: based on fewer than {sdc.SUPPRESSION_THRESHOLD + 1} {small}"
    if fig.status is None:
        return f"no figure for {when}"
    if cell.value is None:
        return f"no figure for {when}: there were no {metric.denominator_label}"
    last_year = month_name(add_months(month, -12))
    year = format_change(change(cell, year_ago.cell, metric.unit), digits=0)
    year = f"{year} on {last_year}" if year != "not available" else f"no figure for {last_year} to compare"
    return f"{format_value(cell, metric.unit, True)} in {when}: {year}, {format_against(fig.against)}"


# --- statistical process control -----------------------------------------------------------------

def publish_spc(data: ReportData, area: Area, month: date, metric: Metric) -> PublishedSpc:
    """The month's SPC as published. Disclosure control as for the values: nothing (no mean,
    limits, point type or icon) for a month whose figure is suppressed; a month with no figure
    keeps its period's mean and limits, with no point type."""
    point = data.spc.get((area.code, month, metric.metric_id))
    if point is None:
        return _no_spc("no statistical process control for this series")
    cell = data.figure(area, month, metric).cell
    if cell.suppressed:
        return _no_spc("not published for the month (small numbers)")
    point_type = point.point_type if cell.value is not None else None
    variation = _variation_code(point_type, metric) if point_type else None
    assurance = point.assurance or assurance_of(data.figure(area, month, metric).plan,
                                                point, metric.higher_is_better)
    why = None
    if point.mean is None:
        since = " since the last local change" if point.rebase_group > 0 else ""
        why = (f"fewer than {point.min_points} final months{since} ({point.used_months or 0}), "
               "so no limits yet")
    elif cell.value is None:
        why = "no figure for the month"
    return PublishedSpc(point.mean, point.lpl, point.upl, point_type, point.rebase_group,
                        VARIATION_ICONS.get(variation), variation,
                        ASSURANCE_ICONS.get(assurance), assurance, why)


def _no_spc(why: str) -> PublishedSpc:
    return PublishedSpc(None, None, None, None, None, None, None, None, None, why)


def assurance_of(plan: float | None, point: SpcPoint, higher_is_better: bool | None) -> str | None:
    """Making Data Count's assurance of a plan against a month's process limits (metric_spc
    gives it for a series' last month; earlier months' pages ask the same question)."""
    if plan is None or point.lpl is None or point.upl is None or higher_is_better is None:
        return None
    if plan < point.lpl:
        return "consistent_pass" if higher_is_better else "consistent_fail"
    if plan > point.upl:
        return "consistent_fail" if higher_is_better else "consistent_pass"
    return "inconsistent"


def _variation_code(point_type: str, metric: Metric) -> str:
    """The icon of a point type: improvement and concern take the side they lie on."""
    if point_type in ("special_cause_improvement", "special_cause_concern"):
        improvement = point_type == "special_cause_improvement"
        high = improvement == bool(metric.higher_is_better)
        return f"{point_type}_{'high' if high else 'low'}"
    return point_type


def comparator(data: ReportData, area: Area, metric: Metric) -> tuple[Area, str]:
    """The line a chart compares the area with, and its true name: England only where the
    figures cover England (NHS England's published statistics for the measures published by
    provider, or an orgs file listing every HWB in England); otherwise, on a HWB page, its ICB,
    and elsewhere the total of the areas loaded."""
    england = data.areas[ENGLAND_CODE]
    if metric.by_provider or data.covers_england:
        return england, "England"
    icb = data.areas.get(area.parent) if area.type == "hwb" and area.parent else None
    if icb is not None:
        return icb, icb.name
    return england, ALL_AREAS_LABEL


def _series_changes(data: ReportData, area: Area, month: date, metric: Metric) -> list[dict]:
    """The area's own changes for the metric (or for every metric) that start a rebase group
    on or before `month`."""
    changes = []
    for change in data.changes:
        if change["area_code"] != area.code.upper() or change["metric_id"] not in ("*", metric.metric_id):
            continue
        point = data.spc.get((area.code, change["change_month"], metric.metric_id))
        if change["change_month"] <= month and point is not None and point.rebase_group > 0:
            changes.append(change)
    # two changes in one month start one group: name them together
    merged: dict[date, dict] = {}
    for c in changes:
        row = merged.setdefault(c["change_month"], {**c, "descriptions": []})
        row["descriptions"].append(c["description"] or "local change")
    return [dict(r, description="; ".join(r["descriptions"])) for r in merged.values()]


def change_reading(data: ReportData, area: Area, month: date, metric: Metric, change: dict) -> str:
    """Did the change work? Whether the months since it show special cause against the limits
    from before it, and the mean before and after (after: from the published figures)."""
    start = change["change_month"]
    since = month_range(start, month)
    first = data.spc[(area.code, start, metric.metric_id)]
    name = f"{change['description']} (from {month_name(start)})"
    figures = {m: data.figure(area, m, metric).cell for m in since}
    shown = [m for m in since if not figures[m].suppressed and figures[m].value is not None]
    after = (sum(figures[m].value for m in shown) / len(shown)) if shown else None
    after_text = (f"{format_value(after, metric.unit, True)} since" if after is not None
                  else "no published figure since")
    if first.prior_mean is None:
        return sentence(f"{name}: too few final months before it to set limits "
                        f"(at least {data.spc_settings.min_points} are needed); {after_text}") + "."
    special = [m for m in shown if (p := data.spc.get((area.code, m, metric.metric_id)))
               and p.prior_point_type not in (None, "common_cause")]
    kinds = sorted({POINT_LABEL[data.spc[(area.code, m, metric.metric_id)].prior_point_type]
                    for m in special})
    if special:
        verdict = (f"{len(special)} of the {len(shown)} months since show special cause against "
                   f"the limits from before it ({', '.join(kinds)})")
    else:
        verdict = (f"none of the {len(shown)} months since shows special cause against the limits "
                   "from before it: no sign yet that it changed the process")
    before = format_value(first.prior_mean, metric.unit, True)
    return sentence(f"{name}: {verdict}; mean {before} before, {after_text}") + "."


# --- reading the tables ---------------------------------------------------------------------------

def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def load_report_data(con: duckdb.DuckDBPyConnection, first: date, last: date) -> ReportData:
    """Read the months first..last (and the metric catalogue and orgs) from the database."""
    between = [first, last]
    periods = [month_code(m) for m in month_range(first, last)]
    return ReportData(
        metrics=_load_metrics(con),
        areas=_load_areas(con),
        sources=_load_sources(con, between),
        present=_load_present(con),
        deliveries=_rows(con, "select period_month, dataset, org_code, received from deliveries "
                              "where period_month between ? and ? order by all", between),
        quarantined=_rows(con, _QUARANTINE_SQL, [periods]),
        rejected=_rows(con, "select file_name, org_code, dataset, period, reason, rows_in from load_log "
                            "where status = 'rejected' and period in ? order by file_name", [periods]),
        quality=_rows(con, "select period_month, area_code, measure, value from data_quality "
                           "where period_month between ? and ?", between),
        linked_metric_ids=_load_linked_metric_ids(con),
        linkage=_load_linkage(con, between),
        spc=_load_spc(con, between),   # every month to the last: changes reach back
        changes=_load_changes(con),
        spc_settings=_spc_settings(con),
        covers_england=_covers_england(con),
    )


def _load_spc(con, between: list[date]) -> dict[tuple[str, date, str], SpcPoint]:
    if not relation_exists(con, "metric_spc"):
        return {}
    rows = _rows(con, """
        select area_code, period_month, metric_id, rebase_group, is_used, used_months, min_points,
               mean, lpl, upl, point_type, variation, assurance, prior_mean, prior_point_type
        from metric_spc where period_month <= ?""", [between[1]])
    return {(r.pop("area_code"), r.pop("period_month"), r.pop("metric_id")): SpcPoint(**r)
            for r in rows}


def _load_changes(con) -> list[dict]:
    if not relation_exists(con, "stg_changes"):
        return []
    return _rows(con, "select area_code, metric_id, change_month, description from stg_changes "
                      "order by change_month, metric_id")


def _spc_settings(con) -> SpcSettings:
    """The settings the connection gives metric_spc (flows.settings.apply_spc_settings)."""
    defaults = SpcSettings()
    min_points, fix_after, screen = con.execute(
        "select getvariable('spc_min_points'), getvariable('spc_fix_after'), "
        "getvariable('spc_screen_outliers')").fetchone()
    return SpcSettings(min_points=int(min_points) if min_points is not None else defaults.min_points,
                       fix_after=int(fix_after) if fix_after is not None else None,
                       screen_outliers=bool(screen) if screen is not None else defaults.screen_outliers)


def _covers_england(con) -> bool:
    english_hwbs = con.execute("select count(distinct org_code) from orgs "
                               "where upper(org_type) = 'HWB' and org_code like 'E%'").fetchone()[0]
    return english_hwbs >= ENGLAND_HWB_MIN


# A file name can appear more than once in load_log (a duplicate is logged again); count each
# quarantined row once, against the files that are in effect.
_QUARANTINE_SQL = """
    with files as (
        select distinct file_name, org_code, dataset, period
        from load_log
        where status in ('loaded', 'rejected') and period in ?
    )
    select f.org_code, f.dataset, f.period, q.rule, count(*) as rows
    from quarantine as q
    join files as f using (file_name)
    group by all
    order by all
"""


def _load_metrics(con) -> list[Metric]:
    # The runner adds `rollup` to the catalogue; a catalogue made before it has only HWB metrics.
    has_rollup = con.execute("select count(*) from duckdb_columns() where table_name = "
                             "'metric_catalog' and column_name = 'rollup'").fetchone()[0] > 0
    rollup = "coalesce(rollup, 'hwb')" if has_rollup else "'hwb'"
    rows = _rows(con, "select metric_id, title, unit, higher_is_better, numerator_label, "
                      "denominator_label, unit_cost, definition, official_id, source, sql_file, "
                      f"sort_order, {rollup} as rollup from metric_catalog "
                      "order by sort_order, metric_id")
    return [Metric(**r) for r in rows]


def _load_sources(con, between: list[date]):
    rows = _rows(con, """
        select v.period_month, v.area_type, v.area_code, v.metric_id, v.numerator, v.denominator,
               v.value, v.plan_value, v.status, p.variance, p.variance_count, p.variance_cost,
               p.ytd_variance_count, p.ytd_variance_cost
        from metric_values as v
        left join metric_plan_variance as p using (period_month, area_type, area_code, metric_id)
        where v.period_month between ? and ?""", between)
    sources = {}
    for r in rows:
        key = (r.pop("area_code"), r.pop("period_month"), r.pop("metric_id"))
        del r["area_type"]
        sources[key] = Source(**r)
    return sources


def _load_present(con) -> dict[date, dict[str, str]]:
    present: dict[date, dict[str, str]] = defaultdict(dict)
    for r in _rows(con, "select distinct period_month, area_code, area_type from metric_values"):
        present[r["period_month"]][r["area_code"]] = r["area_type"]
    return present


def _load_areas(con) -> dict[str, Area]:
    areas = {r["org_code"]: Area(r["org_code"], r["org_name"] or r["org_code"],
                                 ORG_AREA_TYPE.get(r["org_type"], r["org_type"].lower()),
                                 r["parent_code"])
             for r in _rows(con, "select org_code, org_type, org_name, parent_code from orgs")}
    areas[ENGLAND_CODE] = Area(ENGLAND_CODE, "England", "england")
    return areas


# --- page contexts --------------------------------------------------------------------------------

def hwb_page_context(data: ReportData, month: date, hwb: Area) -> dict:
    """Everything the page of one health and wellbeing board for one month shows."""
    icb = data.areas.get(hwb.parent) if hwb.parent else None
    metrics = metrics_for(data, month, [hwb])
    providers = providers_section(data, month, icb)
    return {
        **_page_basics(data, month, hwb, metrics, kind="hwb"),
        "icb": icb if icb and icb.code in data.present.get(month, ()) else None,
        "summary": summary_rows(data, month, hwb, metrics),
        "sections": [metric_section(data, month, hwb, m) for m in metrics],
        "providers": providers,
        "methodology": _methodology(metrics, providers),
        "data_quality": data_quality(data, month, [hwb] + _providers(data, hwb.parent)),
        "joined_up": joined_up_section(data, month, [hwb]),
    }


def icb_page_context(data: ReportData, month: date, icb: Area) -> dict:
    """The ICB's own figures, and its HWBs side by side."""
    hwbs = icb_hwbs(data, month, icb)
    metrics = metrics_for(data, month, [icb])
    by_hwb = metrics_for(data, month, hwbs)     # provider-level metrics have no HWB figures
    providers = providers_section(data, month, icb)
    return {
        **_page_basics(data, month, icb, metrics, kind="icb"),
        "hwbs": hwbs,
        "summary": summary_rows(data, month, icb, metrics),
        "side_by_side": side_by_side(data, month, icb, hwbs, [m for m in metrics if m in by_hwb]),
        "sections": [dict(metric_section(data, month, icb, m),
                          hwb_trend=hwb_trend(data, month, m, hwbs) if m in by_hwb else None)
                     for m in metrics],
        "providers": providers,
        "methodology": _methodology(metrics, providers),
        "data_quality": data_quality(data, month, hwbs + _providers(data, icb.code)),
        "joined_up": joined_up_section(data, month, hwbs),
    }


def index_context(data: ReportData, months: list[date], reports_dir: Path) -> dict:
    """Every month with pages on disk, newest first, and its pages grouped by ICB."""
    listed = [m for m in sorted(data.present, reverse=True)
              if (reports_dir / month_code(m) / "figures.json").exists()]
    return {
        "page": {"kind": "index", "title": "Health and social care integration reports",
                 "root": "", "month": None},
        "months": [_index_month(data, m, reports_dir) for m in listed],
        "metrics": data.metrics,
        "rag_rule": RAG_RULE,
        "sdc_rule": SDC_RULE,
    }


def _index_month(data: ReportData, month: date, reports_dir: Path) -> dict:
    folder = reports_dir / month_code(month)
    exists = {p.stem for p in folder.glob("*.html")}
    icbs = [a for a in _areas_of_type(data, month, "icb") if a.code in exists]
    grouped = {a.code for icb in icbs for a in icb_hwbs(data, month, icb)}
    return {
        "month": month, "code": month_code(month),
        "icbs": [{"area": icb, "hwbs": [h for h in icb_hwbs(data, month, icb) if h.code in exists]}
                 for icb in icbs],
        "other_hwbs": [a for a in _areas_of_type(data, month, "hwb")
                       if a.code in exists and a.code not in grouped],
    }


def metrics_for(data: ReportData, month: date, areas: list[Area]) -> list[Metric]:
    """The catalogue's metrics (in its order) that have figures for any of `areas` in the
    window: an HWB page leaves out provider-level measures, which have no HWB rows."""
    months = window(month)
    return [metric for metric in data.metrics
            if any((a.code, m, metric.metric_id) in data.sources for a in areas for m in months)]


def _page_basics(data: ReportData, month: date, area: Area, metrics: list[Metric], *,
                 kind: str) -> dict:
    return {
        "page": {"kind": kind, "title": f"{area.name}: {month_name(month)}", "root": "../",
                 "month": month, "window_start": window(month)[0],
                 "export_csv": "figures.csv", "export_json": "figures.json"},
        "area": area,
        "metrics": metrics,
        "provisional": [m for m in metrics if data.figure(area, month, m).status == "provisional"],
        "methodology": metrics,
        "cost_units": sorted({m.numerator_label for m in metrics if m.unit_cost is not None}),
        "rag_rule": RAG_RULE,
        "sdc_rule": SDC_RULE,
        "spc_settings": data.spc_settings,
        "comparator_note": comparator_note(data, area),
        "comparator_name": _page_comparator(data, area, metrics),
    }


def _page_comparator(data: ReportData, area: Area, metrics: list[Metric]) -> str:
    """What the page's area is compared with, for its opening line."""
    names = [comparator(data, area, m)[1] for m in metrics if not m.by_provider] or ["England"]
    name = names[0]
    return "all the areas in this report" if name == ALL_AREAS_LABEL else name


def comparator_note(data: ReportData, area: Area) -> str:
    """How the page's comparator lines are chosen, in words (methodology)."""
    if data.covers_england:
        return ("The comparator line is England: the areas loaded include every health and wellbeing "
                f"board in England (at least {ENGLAND_HWB_MIN}), so their total is England's.")
    text = ("The areas loaded do not include every health and wellbeing board in England, so their "
            "total is not England's. ")
    text += (f"On this page each metric is compared with {data.areas[area.parent].name}, the "
             "integrated care board it belongs to" if area.type == "hwb" and area.parent in data.areas
             else f"Each metric is compared with the total of the areas in this report, labelled "
                  f"'{ALL_AREAS_LABEL}'")
    return text + (". The measures NHS England publishes for each hospital provider are compared "
                   "with England: its published statistics cover every provider in England.")


def summary_rows(data: ReportData, month: date, area: Area, metrics: list[Metric]) -> list[dict]:
    """The month's headline per metric: value, changes, plan, status and cost."""
    rows = []
    for metric in metrics:
        fig = data.figure(area, month, metric)
        rows.append({
            "metric": metric, "figure": fig, "spc": publish_spc(data, area, month, metric),
            "on_month": change(fig.cell, data.figure(area, add_months(month, -1), metric).cell, metric.unit),
            "on_year": change(fig.cell, data.figure(area, add_months(month, -12), metric).cell, metric.unit),
        })
    return rows


def metric_section(data: ReportData, month: date, area: Area, metric: Metric) -> dict:
    """One metric: the reading, the SPC chart and its figures for the 24 months to `month`,
    and a line for each local change ("did it work?")."""
    against, label = comparator(data, area, metric)
    trend = [{"month": m, "figure": data.figure(area, m, metric),
              "england": data.figure(against, m, metric).cell,
              "spc": publish_spc(data, area, m, metric)} for m in window(month)]
    fig = data.figure(area, month, metric)
    return {
        "metric": metric,
        "reading": reading(metric, month, fig, data.figure(area, add_months(month, -12), metric)),
        "chart": chart_spec(data, month, area, metric),
        "trend": trend,
        "comparator_label": label,
        "spc": publish_spc(data, area, month, metric),
        "changes": [change_reading(data, area, month, metric, c)
                    for c in _series_changes(data, area, month, metric)],
    }


def hwb_trend(data: ReportData, month: date, metric: Metric, hwbs: list[Area]) -> dict:
    """The ICB's HWBs side by side for one metric: a chart each and a table of values."""
    return {
        "charts": [chart_spec(data, month, hwb, metric) for hwb in hwbs],
        "rows": [{"month": m, "cells": [data.figure(h, m, metric).cell for h in hwbs]}
                 for m in window(month)],
    }


def side_by_side(data: ReportData, month: date, icb: Area, hwbs: list[Area],
                 metrics: list[Metric]) -> list[dict]:
    return [{"metric": m, "figures": [data.figure(a, month, m) for a in [icb, *hwbs]],
             "england": data.figure(comparator(data, icb, m)[0], month, m).cell,
             "comparator_label": comparator(data, icb, m)[1]} for m in metrics]


def providers_section(data: ReportData, month: date, icb: Area | None) -> dict | None:
    """The providers of `icb` (orgs) against England on the catalogue's provider-level measures
    for the month, with a trend for each percentage; None when none of them has a figure."""
    providers = _providers(data, icb.code) if icb else []
    metrics = [m for m in data.metrics if m.by_provider and any(
        (p.code, month, m.metric_id) in data.sources for p in providers)]
    if not metrics:
        return None
    england = data.areas[ENGLAND_CODE]
    rows = [{"area": p, "figures": [data.figure(p, month, m) for m in metrics]}
            for p in [*providers, england]]
    return {
        "icb": icb,
        "metrics": metrics,
        "provisional": [any(r["figures"][i].status == "provisional" for r in rows)
                        for i in range(len(metrics))],
        "rows": rows[:-1],
        "england": rows[-1],
        "trends": [t for m in metrics if m.unit == "percent"
                   if (t := provider_trend(data, month, m, providers))],
        "rule": PROVIDER_RULE,
    }


def provider_trend(data: ReportData, month: date, metric: Metric,
                   providers: list[Area]) -> dict | None:
    """One percentage measure over the window: a chart per provider with figures, and their table."""
    months = window(month)
    charted = [p for p in providers
               if any((p.code, m, metric.metric_id) in data.sources for m in months)]
    if not charted:
        return None
    england = data.areas[ENGLAND_CODE]
    return {
        "metric": metric,
        "providers": charted,
        "charts": [provider_chart_spec(data, month, p, metric) for p in charted],
        "rows": [{"month": m, "cells": [data.figure(p, m, metric).cell for p in charted],
                  "england": data.figure(england, m, metric).cell} for m in months],
    }


def _methodology(metrics: list[Metric], providers: dict | None) -> list[Metric]:
    """The page's metrics and the provider-level measures its providers table shows."""
    extra = [m for m in (providers or {}).get("metrics", []) if m not in metrics]
    return sorted(metrics + extra, key=lambda m: (m.sort_order, m.metric_id))


def chart_spec(data: ReportData, month: date, area: Area, metric: Metric) -> ChartSpec:
    """The metric's SPC chart for the window, with its text alternative."""
    months = window(month)
    figs = [data.figure(area, m, metric) for m in months]
    spc = [publish_spc(data, area, m, metric) for m in months]
    against, comparator_label = comparator(data, area, metric)
    rebases = tuple((i, c["description"]) for c in _series_changes(data, area, month, metric)
                    for i, m in enumerate(months) if m == c["change_month"])
    label = (f"Statistical process control chart of {metric.title} ({metric.unit_label}) for "
             f"{area.name}, {month_name(months[0])} to {month_name(month)}, with the plan and "
             f"{comparator_label}. {month_name(month)}: {format_value(figs[-1].cell, metric.unit)}; "
             f"plan {format_value(figs[-1].plan, metric.unit)}. {_spc_summary(spc, metric, months)}"
             + "".join(f" Limits reset from {months[i]:%B %Y}: {text}." for i, text in rebases)
             + " Figures in the table below.")
    spec = _trend_spec(data, months, area, metric, f"c-{area.code}-{metric.metric_id}", label, figs,
                       against)
    return dataclasses.replace(
        spec, point_types=tuple(p.point_type for p in spc), mean=tuple(p.mean for p in spc),
        lpl=tuple(p.lpl for p in spc), upl=tuple(p.upl for p in spc), rebases=rebases,
        comparator=comparator_label)


def _spc_summary(spc: list[PublishedSpc], metric: Metric, months: list[date]) -> str:
    """The chart's SPC reading in words, for its text alternative."""
    last = spc[-1]
    if last.mean is None:
        return f"No process limits: {last.why_not}."
    special = [(m, p.point_type) for m, p in zip(months, spc)
               if p.point_type not in (None, "common_cause")]
    text = (f"Mean {format_value(last.mean, metric.unit)}, process limits "
            f"{format_value(last.lpl, metric.unit)} to {format_value(last.upl, metric.unit)}. ")
    if special:
        text += (f"{len(special)} months show special cause: "
                 + ", ".join(f"{m:%b %Y} {POINT_LABEL[t]}" for m, t in special) + ".")
    else:
        text += "Every month shows common cause variation."
    if last.variation:
        text += f" Variation: {last.variation.label}."
    if last.assurance:
        text += f" Assurance: {last.assurance.label}."
    return text


def provider_chart_spec(data: ReportData, month: date, provider: Area, metric: Metric) -> ChartSpec:
    """A provider's trend against England (no plan: providers have none)."""
    months = window(month)
    figs = [data.figure(provider, m, metric) for m in months]
    england = data.figure(data.areas[ENGLAND_CODE], month, metric)
    label = (f"Line chart of {metric.title} ({metric.unit_label}) for {provider.name}, "
             f"{month_name(months[0])} to {month_name(month)}, with England. "
             f"{month_name(month)}: {format_value(figs[-1].cell, metric.unit)}; "
             f"England {format_value(england.cell, metric.unit)}. Figures in the table below.")
    return _trend_spec(data, months, provider, metric, f"p-{provider.code}-{metric.metric_id}",
                       label, figs)


def _trend_spec(data: ReportData, months: list[date], area: Area, metric: Metric, key: str,
                label: str, figs: list[Figure], against: Area | None = None) -> ChartSpec:
    england = against or data.areas[ENGLAND_CODE]
    return ChartSpec(
        key=re.sub(r"[^A-Za-z0-9_-]", "-", key),
        label=label, area_name=area.name, y_label=metric.unit_label,
        months=tuple(month_short(m) for m in months),
        values=tuple(f.cell.value for f in figs),
        plan=tuple(f.plan for f in figs),
        england=tuple(data.figure(england, m, metric).cell.value for m in months),
        provisional=tuple(f.status == "provisional" for f in figs),
    )


def data_quality(data: ReportData, month: date, orgs: list[Area]) -> dict:
    """Deliveries, quarantined rows and record-level problems for the organisations behind a page."""
    codes = {o.code for o in orgs}
    period = month_code(month)
    return {
        "deliveries": _deliveries(data, month, codes),
        "quarantined": [{**r, "org": _org(data, r["org_code"]), "rows": sdc.publish_count(r["rows"])}
                        for r in data.quarantined if r["period"] == period and r["org_code"] in codes],
        "rejected": [{"file_name": r["file_name"], "reason": r["reason"],
                      "rows": sdc.publish_count(r["rows_in"])}
                     for r in data.rejected if r["period"] == period and r["org_code"] in codes],
        **_quality_measures(data, month, codes),
    }


def _deliveries(data: ReportData, month: date, codes: set[str]) -> list[dict]:
    first = window(month)[0]
    by_org: dict[tuple, dict] = {}
    for r in data.deliveries:
        if r["org_code"] in codes and first <= r["period_month"] <= month:
            row = by_org.setdefault((r["org_code"], r["dataset"]), {
                "org": _org(data, r["org_code"]), "dataset": r["dataset"], "received": 0, "missing": []})
            row["received"] += 1 if r["received"] else 0
            row["missing"] += [] if r["received"] else [r["period_month"]]
    return sorted(by_org.values(), key=lambda r: (r["org"].type, r["org"].name, r["dataset"]))


def _quality_measures(data: ReportData, month: date, codes: set[str]) -> dict:
    known = list(MEASURE_LABEL)
    measures = sorted({r["measure"] for r in data.quality},
                      key=lambda m: (known.index(m) if m in known else len(known), m))
    table: dict[str | None, dict[str, float]] = defaultdict(dict)
    for r in data.quality:
        if r["period_month"] == month and (r["area_code"] in codes or r["area_code"] is None):
            table[r["area_code"]][r["measure"]] = r["value"]
    rows = [{"org": _org(data, code) if code else None,
             "counts": [sdc.publish_count(values.get(m)) for m in measures]}
            for code, values in sorted(table.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))]
    return {"measures": [MEASURE_LABEL.get(m, m.replace("_", " ").capitalize()) for m in measures],
            "measure_rows": rows}


def _org(data: ReportData, code: str) -> Area:
    return data.areas.get(code) or Area(code, code, "unknown")


def _providers(data: ReportData, icb_code: str | None) -> list[Area]:
    return sorted((a for a in data.areas.values() if a.type == "provider" and a.parent == icb_code
                   and icb_code is not None), key=lambda a: a.name)


def _areas_of_type(data: ReportData, month: date, area_type: str) -> list[Area]:
    codes = [c for c, t in data.present.get(month, {}).items() if t == area_type]
    return sorted((_org(data, c) for c in codes), key=lambda a: (a.name, a.code))


def icb_hwbs(data: ReportData, month: date, icb: Area) -> list[Area]:
    return [a for a in _areas_of_type(data, month, "hwb") if a.parent == icb.code]


# --- joined-up care (extracts 3a) ---------------------------------------------------------------

COUNCIL_DATASETS = ("reablement", "carehome")
LINKAGE_MONTHS = 12           # months of linkage rates in the data-quality table
LINKAGE_RULE = (
    "The linkage rate is the share of a council's reablement and care home rows carrying an NHS "
    "number (or another person id) whose person is found in at least one hospital spell from "
    "any provider, at any date. A council whose ids cannot be matched to hospital records has a "
    "rate near 0%, and its joined-up figures are then low because the records cannot be joined, "
    "not because people were not helped."
)


def _load_linked_metric_ids(con) -> frozenset[str]:
    """Metrics that follow people from hospital into council data: the catalogue's metrics that
    read hospital spells and a council dataset (none in a catalogue made before `datasets`)."""
    has_datasets = con.execute("select count(*) from duckdb_columns() where table_name = "
                               "'metric_catalog' and column_name = 'datasets'").fetchone()[0] > 0
    if not has_datasets:
        return frozenset()
    rows = con.execute("""select metric_id from metric_catalog
                          where list_contains(datasets, 'apc')
                            and list_has_any(datasets, ?::varchar[])""",
                       [list(COUNCIL_DATASETS)]).fetchall()
    return frozenset(r[0] for r in rows)


def _load_linkage(con, between: list[date]) -> list[dict]:
    """Each council's rows with a person id and those linked to a hospital spell, by month
    (nothing when the database has no `linkage_rate` view)."""
    exists = con.execute("select count(*) from duckdb_views() where view_name = 'linkage_rate'"
                         ).fetchone()[0] > 0
    if not exists:
        return []
    return _rows(con, """select period_month, la_code, dataset, rows_with_person_id, rows_linked
                         from linkage_rate where period_month between ? and ?""", between)


def joined_up_section(data: ReportData, month: date, councils: list[Area]) -> dict:
    """The page's "Joined-up care" section: which of its metric sections are linked metrics
    (shown there, not among the others), and the linkage rate of each council beside them,
    for the month and the twelve months to it, by dataset; and the linkage rate of each
    council by month for the data-quality section. Counts pass through flows.publish.sdc."""
    return {
        "metric_ids": sorted(data.linked_metric_ids),
        "councils": [row for council in councils for dataset in COUNCIL_DATASETS
                     if (row := _council_linkage(data, month, council, dataset))],
        "by_month": linkage_by_month(data, month, councils),
        "rule": LINKAGE_RULE,
    }


def _linkage_cell(data: ReportData, months: list[date], council: Area,
                  datasets: tuple[str, ...]) -> sdc.Cell | None:
    rows = [r for r in data.linkage if r["la_code"] == council.code and r["period_month"] in months
            and r["dataset"] in datasets]
    if not rows:
        return None
    return sdc.publish_cell(sum(r["rows_linked"] for r in rows),
                            sum(r["rows_with_person_id"] for r in rows), scale=100)


def _council_linkage(data: ReportData, month: date, council: Area, dataset: str) -> dict | None:
    year = month_range(add_months(month, 1 - LINKAGE_MONTHS), month)
    over_year = _linkage_cell(data, year, council, (dataset,))
    if over_year is None:
        return None
    return {"org": council, "dataset": dataset,
            "month": _linkage_cell(data, [month], council, (dataset,)), "year": over_year}


def linkage_by_month(data: ReportData, month: date, councils: list[Area]) -> dict:
    """Linkage rate per council (reablement and care home rows together) for each of the
    LINKAGE_MONTHS months to `month`, newest first; councils with no rows are left out."""
    months = month_range(add_months(month, 1 - LINKAGE_MONTHS), month)[::-1]
    cells = {(m, c.code): _linkage_cell(data, [m], c, COUNCIL_DATASETS) for m in months for c in councils}
    shown = [c for c in councils if any(cells[m, c.code] for m in months)]
    rows = [{"month": m, "cells": [cells[m, c.code] for c in shown]} for m in months]
    # months before any council's first rows say nothing
    return {"councils": shown, "rows": [r for r in rows if any(r["cells"])]}


# --- exports -------------------------------------------------------------------------------------

def export_rows(data: ReportData, month: date) -> list[dict]:
    """The month's published figures for every area and metric (disclosure-controlled objects)."""
    types = data.present.get(month, {})
    codes = sorted(types, key=lambda c: (AREA_TYPE_ORDER.get(types[c], 9), c))
    # an area that orgs does not list keeps the type metric_values gives it
    return [_export_row(data, month, data.areas.get(code) or Area(code, code, types[code]),
                        types[code], metric)
            for code in codes for metric in data.metrics
            if (code, month, metric.metric_id) in data.sources]


def _export_row(data: ReportData, month: date, area: Area, area_type: str, metric: Metric) -> dict:
    fig = data.figure(area, month, metric)
    return {
        "period_month": month_code(month), "area_type": area_type, "area_code": area.code,
        "area_name": area.name, "metric_id": metric.metric_id, "metric_title": metric.title,
        "unit": metric.unit, "numerator": fig.cell.numerator, "denominator": fig.cell.denominator,
        "value": fig.cell, "plan_value": fig.plan, "variance": fig.against.variance,
        "variance_count": fig.against.count, "variance_cost": fig.cost,
        "ytd_variance_count": fig.ytd_variance_count, "ytd_variance_cost": fig.ytd_cost,
        "rag": fig.rag.code if fig.rag.code != "none" else None, "status": fig.status,
        **_export_spc(publish_spc(data, area, month, metric)),
    }


def _export_spc(spc: PublishedSpc) -> dict:
    """The SPC fields of an export row: as published (no point type for a suppressed figure)."""
    return {"spc_mean": spc.mean, "spc_lower_limit": spc.lpl, "spc_upper_limit": spc.upl,
            "spc_point_type": spc.point_type, "spc_rebase_group": spc.rebase_group,
            "spc_variation": spc.variation_code, "spc_assurance": spc.assurance_code}


def _plain_row(row: dict) -> dict:
    digits = {"value": 2, "variance_cost": 0, "ytd_variance_cost": 0}
    out = {}
    for key, value in row.items():
        if isinstance(value, (sdc.Count, sdc.Cell, sdc.Cost)):
            value = sdc.as_published(value, digits.get(key))
        elif isinstance(value, float):
            value = round(value, 2)
        out[key] = value
    return out


# A spreadsheet reads a text cell starting with one of these as a formula (OWASP CSV injection;
# a line feed too, as some tools drop a leading line break before evaluating).
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value):
    """A CSV cell no spreadsheet evaluates (OWASP CSV injection): text starting with a formula
    character gets a leading single quote. Numbers, negative ones included, stay numbers; JSON
    is data, not a spreadsheet, and keeps the text as it is."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_STARTS):
        return "'" + value
    return value


def export_texts(rows: list[dict], month: date) -> tuple[str, str]:
    """(CSV, JSON) of already-checked export rows."""
    plain = [_plain_row(r) for r in rows]
    as_published = any(isinstance(r["value"], sdc.Cell) and r["value"].exempt for r in rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: csv_cell(value) for key, value in row.items()} for row in plain)
    document = {"period_month": month_code(month),
                "disclosure_control": SDC_RULE + (f" {PROVIDER_RULE}" if as_published else ""),
                "rag_rule": RAG_RULE, "suppressed_marker": sdc.SUPPRESSED, "figures": plain}
    return buffer.getvalue(), json.dumps(document, indent=1, ensure_ascii=False) + "\n"


# --- rendering ---------------------------------------------------------------------------------

def make_environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR),
                      autoescape=select_autoescape(["html.j2"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    return env


@dataclass
class _MonthOutput:
    pages: dict[Path, tuple[str, dict]]     # path -> (template, context)
    exports: list[dict]


def build_month(data: ReportData, month: date, folder: Path) -> _MonthOutput:
    """Every page context and the export of one month, checked before anything is written."""
    pages = {folder / hwb.href: ("hwb_page.html.j2", hwb_page_context(data, month, hwb))
             for hwb in _areas_of_type(data, month, "hwb")}
    pages |= {folder / icb.href: ("icb_page.html.j2", icb_page_context(data, month, icb))
              for icb in _areas_of_type(data, month, "icb")}
    exports = export_rows(data, month)
    rollups = {m.metric_id: m.rollup for m in data.metrics}     # the catalogue's exemptions
    for path, (_template, context) in pages.items():
        sdc.check_publishable(context, where=str(path), rollups=rollups)
    sdc.check_publishable(exports, where=str(folder / "figures.csv"), rollups=rollups)
    return _MonthOutput(pages, exports)


def _chart_specs(context: dict) -> list[ChartSpec]:
    specs = []
    for section in context["sections"]:
        specs.append(section["chart"])
        specs += (section.get("hwb_trend") or {}).get("charts", [])
    for trend in (context.get("providers") or {}).get("trends", []):
        specs += trend["charts"]
    return specs


def _write(path: Path, text: str, *, root: Path) -> None:
    """Write atomically, so a reader never sees half a page; only a plainly named file that
    resolves inside `root` (the reports folder) is written (flows.paths)."""
    path = paths.inside(root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_month(env: Environment, charts: ChartRenderer, data: ReportData, month: date,
                 reports_dir: Path) -> dict[str, float]:
    """Render and write one month's pages and exports; returns the seconds spent per step."""
    folder = reports_dir / month_code(month)
    t0 = time.perf_counter()
    cache = PageCache(folder, data)  # a page whose inputs are unchanged is not drawn or written
    if cache.month_unchanged():
        log.info("%s: unchanged, nothing rendered", month_code(month))
        return {"contexts": time.perf_counter() - t0, "charts": 0.0, "templates": 0.0,
                "pages": 0, "chart_count": 0}
    out = build_month(data, month, folder)
    out.pages = {p: page for p, page in out.pages.items() if cache.changed(p, *page)}
    t1 = time.perf_counter()
    svgs = charts.render([s for _t, ctx in out.pages.values() for s in _chart_specs(ctx)])
    t2 = time.perf_counter()
    svg_markup = {key: Markup(svg) for key, svg in svgs.items()}
    for path, (template, context) in out.pages.items():
        if not _page_path_is_safe(folder, path):
            continue
        _write(path, env.get_template(template).render(context, charts=svg_markup),
               root=reports_dir)
    csv_text, json_text = export_texts(out.exports, month)
    _write(folder / "figures.csv", csv_text, root=reports_dir)
    _write(folder / "figures.json", json_text, root=reports_dir)
    cache.save()
    log.info("%s: %d pages rendered, %d unchanged", month_code(month), len(out.pages),
             len(cache.digests) - len(out.pages))
    t3 = time.perf_counter()
    return {"contexts": t1 - t0, "charts": t2 - t1, "templates": t3 - t2,
            "pages": len(out.pages), "chart_count": len(svgs)}


def _page_path_is_safe(folder: Path, path: Path) -> bool:
    """A page is `<month folder>/<area code>.html`. The loader quarantines a bad ORG_CODE, so
    a page named from anything else means a bad code reached the database: that page is not
    written (and named in the log), the month's other pages are."""
    try:
        if path.parent != folder or path.suffix != ".html":
            raise UnsafeOutputPath(f"refused to write {path.name!r}: not a page of {folder.name}")
        paths.code_file_name(path.stem, ".html")
        return True
    except UnsafeOutputPath as refused:
        log.warning("page not written: %s", refused)
        return False


def _months_to_render(con: duckdb.DuckDBPyConnection, months: list[date] | None) -> list[date]:
    available = {r["m"] for r in _rows(con, "select distinct period_month as m from metric_values")}
    wanted = set(available if months is None else months)
    if wanted - available:
        log.warning("no metric values for %s; nothing rendered for them",
                    ", ".join(month_code(m) for m in sorted(wanted - available)))
    return sorted(wanted & available)


def _chart_workers(data: ReportData, months: list[date], workers: int) -> int:
    """The pool only pays for its start-up when there are enough charts."""
    pages = sum(t in ("hwb", "icb") for m in months for t in data.present.get(m, {}).values())
    return workers if pages * len(data.metrics) >= POOL_MIN_CHARTS else 1


def render_reports(con: duckdb.DuckDBPyConnection, reports_dir: Path,
                   months: list[date] | None = None, *, workers: int = 2) -> Path:
    """Render every page and export of `months` (default: every month in metric_values) and the
    index; returns the path of reports/index.html."""
    reports_dir = Path(reports_dir)
    months = _months_to_render(con, months)
    first = add_months(months[0], 1 - WINDOW_MONTHS) if months else date.today()
    data = load_report_data(con, first, months[-1] if months else first)
    env = make_environment()
    totals: dict[str, float] = defaultdict(float)
    with ChartRenderer(_chart_workers(data, months, workers)) as charts:
        for month in months:
            for key, seconds in render_month(env, charts, data, month, reports_dir).items():
                totals[key] += seconds
    index = reports_dir / "index.html"
    _write(index, env.get_template("index.html.j2").render(index_context(data, months, reports_dir)),
           root=reports_dir)
    log.info("rendered %d months, %d pages, %d charts: contexts %.2fs, charts %.2fs, templates %.2fs",
             len(months), totals["pages"], totals["chart_count"], totals["contexts"],
             totals["charts"], totals["templates"])
    return index
