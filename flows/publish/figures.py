"""Published figures: disclosure control applied to one area, month and metric, its RAG
status against plan, its change on earlier months, and its SPC as published.

Everything a page or export shows of a figure comes from `publish_figure` and `publish_spc`
(through `ReportData.figure`, which keeps each one once), so disclosure control
(flows.publish.sdc) is applied in one place. Below England every number derives from rounded
counts; a provider's figure on a measure the catalogue publishes by provider is shown as
published (sdc.EXEMPT_ROLLUPS).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache

from flows import ENGLAND_CODE
from flows.months import add_months, financial_year_start, month_range
from flows.publish import sdc
from flows.publish.report_data import Area, Metric, ReportData, Source, SpcPoint

WINDOW_MONTHS = 24            # months shown in each trend chart and table
AMBER_TOLERANCE = 0.05        # amber: worse than plan by at most 5% of the plan value
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
ALL_AREAS_LABEL = "All areas in this report"


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
    numerator, denominator, months = _ytd_sums(data, area.code, month, metric.metric_id)
    return sdc.publish_cell(numerator if months else None, denominator if months else None,
                            scale=metric.scale, national=area.type == "england",
                            exempt=_exempt(area, metric))


def _ytd_sums(data: ReportData, code: str, month: date, metric_id: str) -> tuple[float, float, int]:
    """The sums of the numerators and denominators of the financial year's months to `month`
    that have a numerator, and how many there are: each month's sums are the month before's
    plus its own (kept in `data._ytd_sums`), added in month order as a plain sum would."""
    key = (code, month, metric_id)
    if key not in data._ytd_sums:
        numerator, denominator, months = (
            (0, 0, 0) if month == financial_year_start(month)
            else _ytd_sums(data, code, add_months(month, -1), metric_id))
        source = data.sources.get(key)
        if source is not None and source.numerator is not None:
            numerator, denominator, months = (numerator + source.numerator,
                                              denominator + (source.denominator or 0), months + 1)
        data._ytd_sums[key] = (numerator, denominator, months)
    return data._ytd_sums[key]


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


@cache
def window(month: date) -> tuple[date, ...]:
    """The WINDOW_MONTHS months ending with `month`, oldest first (worked out once per month:
    every figure of a page asks)."""
    return tuple(month_range(add_months(month, 1 - WINDOW_MONTHS), month))


# --- statistical process control -----------------------------------------------------------------

def publish_spc(data: ReportData, area: Area, month: date, metric: Metric) -> PublishedSpc:
    """The month's SPC as published (`_publish_spc`), worked out once per area, month and
    metric: a page shows it in its summary, trend table and chart."""
    key = (area.code, month, metric.metric_id)
    if key not in data._published_spc:
        data._published_spc[key] = _publish_spc(data, area, month, metric)
    return data._published_spc[key]


def _publish_spc(data: ReportData, area: Area, month: date, metric: Metric) -> PublishedSpc:
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


def series_changes(data: ReportData, area: Area, month: date, metric: Metric) -> list[dict]:
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
