"""The month's figures for every area and metric as CSV and JSON (disclosure-controlled)."""
from __future__ import annotations

import csv
import io
import json
from datetime import date

from flows.months import month_code
from flows.publish import sdc
from flows.publish.figures import PROVIDER_RULE, RAG_RULE, SDC_RULE, PublishedSpc, publish_spc
from flows.publish.report_data import Area, Metric, ReportData

AREA_TYPE_ORDER = {"england": 0, "icb": 1, "hwb": 2, "provider": 3}
EXPORT_COLUMNS = (
    "period_month", "area_type", "area_code", "area_name", "metric_id", "metric_title", "unit",
    "numerator", "denominator", "value", "plan_value", "variance", "variance_count",
    "variance_cost", "ytd_variance_count", "ytd_variance_cost", "rag", "status",
    "spc_mean", "spc_lower_limit", "spc_upper_limit", "spc_point_type", "spc_rebase_group",
    "spc_variation", "spc_assurance",
)


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
