"""Figures in words: the Jinja filters that format published numbers, and the sentences the
pages generate from them (a metric's reading, a local change's "did it work?")."""
from __future__ import annotations

from datetime import date
from functools import cache

from flows.months import add_months, month_code, month_range
from flows.publish import sdc
from flows.publish.figures import POINT_LABEL, Against, Change, Figure, change
from flows.publish.report_data import Area, Metric, ReportData

# --- formatting (Jinja filters, also used in generated sentences) ---------------------------------

@cache          # a page names the same few months thousands of times
def month_name(month: date) -> str:
    return month.strftime("%B %Y")


@cache
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
