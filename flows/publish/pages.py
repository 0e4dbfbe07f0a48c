"""Page contexts: everything one page shows, as plain data the templates only lay out.

One function builds the context of each page kind (`hwb_page_context`, `icb_page_context`,
`index_context`): the summary, a section per metric with its SPC chart (`chart_spec`) and
figures, the ICB's HWBs side by side, the providers of the area's ICB against England, the
joined-up care section (extracts 3a) and data quality. Every figure comes from
flows.publish.figures; nothing here reads the database.
"""
from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from datetime import date
from pathlib import Path

from flows import ENGLAND_CODE
from flows.months import add_months, month_code, month_range
from flows.publish import sdc
from flows.publish.charts import ChartSpec
from flows.publish.figures import (
    ALL_AREAS_LABEL,
    POINT_LABEL,
    PROVIDER_RULE,
    RAG_RULE,
    SDC_RULE,
    Figure,
    PublishedSpc,
    change,
    comparator,
    publish_spc,
    series_changes,
    window,
)
from flows.publish.report_data import COUNCIL_DATASETS, ENGLAND_HWB_MIN, Area, Metric, ReportData
from flows.publish.wording import change_reading, format_value, month_name, month_short, reading

MEASURE_LABEL = {
    "unknown_residence_spells": "Spells with unknown residence",
    "out_of_area_spells": "Spells resident outside the areas covered",
    "invalid_nhs_numbers": "Invalid NHS numbers",
}
LINKAGE_MONTHS = 12           # months of linkage rates in the data-quality table
LINKAGE_RULE = (
    "The linkage rate is the share of a council's reablement and care home rows carrying an NHS "
    "number (or another person id) whose person is found in at least one hospital spell from "
    "any provider, at any date. A council whose ids cannot be matched to hospital records has a "
    "rate near 0%, and its joined-up figures are then low because the records cannot be joined, "
    "not because people were not helped."
)


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
    icbs = [a for a in areas_of_type(data, month, "icb") if a.code in exists]
    grouped = {a.code for icb in icbs for a in icb_hwbs(data, month, icb)}
    return {
        "month": month, "code": month_code(month),
        "icbs": [{"area": icb, "hwbs": [h for h in icb_hwbs(data, month, icb) if h.code in exists]}
                 for icb in icbs],
        "other_hwbs": [a for a in areas_of_type(data, month, "hwb")
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
                    for c in series_changes(data, area, month, metric)],
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
    rebases = tuple((i, c["description"]) for c in series_changes(data, area, month, metric)
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


def areas_of_type(data: ReportData, month: date, area_type: str) -> list[Area]:
    codes = [c for c, t in data.present.get(month, {}).items() if t == area_type]
    return sorted((_org(data, c) for c in codes), key=lambda a: (a.name, a.code))


def icb_hwbs(data: ReportData, month: date, icb: Area) -> list[Area]:
    return [a for a in areas_of_type(data, month, "hwb") if a.parent == icb.code]


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
    rows = [r for r in data.linkage_by_council.get(council.code, ())
            if r["period_month"] in months and r["dataset"] in datasets]
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
