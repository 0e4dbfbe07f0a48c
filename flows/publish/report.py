"""Render the monthly integration-progress reports and write them.

For each month: one page per HWB, one per ICB (its HWBs side by side), the month's figures as
CSV and JSON, and one index of every page and month. Pages are self-contained HTML (styles and
SVG charts inline). Everything published goes through flows.publish.sdc, and
`sdc.check_publishable` refuses a page or export before anything of that month is written.

The path of a page: `report_data` reads the tables once, `figures` publishes each figure
(disclosure control, RAG, SPC), `pages` builds each page's context (`wording` puts figures into
words), `charts` draws the SVG charts, `exports` writes the CSV and JSON; this module renders
the templates, skips the pages whose inputs are unchanged (`page_cache`) and writes the rest.
"""
from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from flows import TEMPLATES_DIR, paths
from flows.errors import UnsafeOutputPath
from flows.months import add_months, month_code
from flows.publish import sdc
from flows.publish.charts import ChartRenderer, ChartSpec
from flows.publish.exports import export_rows, export_texts
from flows.publish.figures import WINDOW_MONTHS
from flows.publish.page_cache import PageCache
from flows.publish.pages import areas_of_type, hwb_page_context, icb_page_context, index_context
from flows.publish.report_data import (
    ReportData,
    inputs_fingerprint,
    load_index_data,
    load_report_data,
    query_rows,
)
from flows.publish.wording import FILTERS

log = logging.getLogger("joinedup.report")


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
             for hwb in areas_of_type(data, month, "hwb")}
    pages |= {folder / icb.href: ("icb_page.html.j2", icb_page_context(data, month, icb))
              for icb in areas_of_type(data, month, "icb")}
    exports = export_rows(data, month)
    rollups = {m.metric_id: m.rollup for m in data.metrics}     # the catalogue's exemptions
    checked: dict[int, object] = {}     # figures shared by many pages are checked once
    for path, (_template, context) in pages.items():
        sdc.check_publishable(context, where=str(path), rollups=rollups, checked=checked)
    sdc.check_publishable(exports, where=str(folder / "figures.csv"), rollups=rollups,
                          checked=checked)
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


def _write_if_changed(path: Path, text: str, *, root: Path) -> None:
    """An export or the index is written only when its text differs from the file's, so its
    modification time says when it last changed, as a page's does."""
    path = paths.inside(root, path)
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    _write(path, text, root=root)


def render_month(env: Environment, charts: ChartRenderer, data: ReportData, month: date,
                 reports_dir: Path, cache: PageCache) -> dict[str, float]:
    """Render and write one month's pages and exports (a page whose inputs are unchanged,
    by `cache`, is not drawn or written); returns the seconds spent per step."""
    folder = reports_dir / month_code(month)
    t0 = time.perf_counter()
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
    _write_if_changed(folder / "figures.csv", csv_text, root=reports_dir)
    _write_if_changed(folder / "figures.json", json_text, root=reports_dir)
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
    available = {r["m"] for r in query_rows(con, "select distinct period_month as m from metric_values")}
    wanted = set(available if months is None else months)
    if wanted - available:
        log.warning("no metric values for %s; nothing rendered for them",
                    ", ".join(month_code(m) for m in sorted(wanted - available)))
    return sorted(wanted & available)


def render_reports(con: duckdb.DuckDBPyConnection, reports_dir: Path,
                   months: list[date] | None = None) -> Path:
    """Render every page and export of `months` (default: every month in metric_values) and the
    index; returns the path of reports/index.html. A month whose inputs are unchanged since its
    pages were written (page_cache.month_key) is neither read nor rendered. Everything is
    rendered in this process: charts are written as SVG directly, with no process pool."""
    reports_dir = Path(reports_dir)
    months = _months_to_render(con, months)
    fingerprint = inputs_fingerprint(con)
    caches = {m: PageCache(reports_dir / month_code(m), fingerprint) for m in months}
    changed = [m for m in months if not caches[m].month_unchanged()]
    for month in sorted(set(months) - set(changed)):
        log.info("%s: unchanged, nothing rendered", month_code(month))
    data = (load_report_data(con, add_months(changed[0], 1 - WINDOW_MONTHS), changed[-1])
            if changed else load_index_data(con))
    env = make_environment()
    totals: dict[str, float] = defaultdict(float)
    with ChartRenderer() as charts:
        for month in changed:
            for key, seconds in render_month(env, charts, data, month, reports_dir,
                                             caches[month]).items():
                totals[key] += seconds
    index = reports_dir / "index.html"
    _write_if_changed(index, env.get_template("index.html.j2").render(
        index_context(data, months, reports_dir)), root=reports_dir)
    log.info("rendered %d months, %d pages, %d charts: contexts %.2fs, charts %.2fs, templates %.2fs",
             len(changed), totals["pages"], totals["chart_count"], totals["contexts"],
             totals["charts"], totals["templates"])
    return index
