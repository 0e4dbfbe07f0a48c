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

import gc
import logging
import multiprocessing
import os
import pickle
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from flows import TEMPLATES_DIR, paths
from flows.errors import UnsafeOutputPath
from flows.ingest.identifiers import withhold_numbers
from flows.months import add_months, month_code
from flows.publish import charts, sdc
from flows.publish.charts import ChartSpec
from flows.publish.exports import export_rows, export_texts
from flows.publish.figures import WINDOW_MONTHS
from flows.publish.page_cache import PageCache
from flows.publish.pages import areas_of_type, hwb_page_context, icb_page_context, index_context
from flows.publish.report_data import (
    Area,
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


def render_month(env: Environment, data: ReportData, month: date, reports_dir: Path,
                 cache: PageCache, workers: _Workers | None = None) -> dict[str, float]:
    """Render and write one month's pages and exports (a page whose inputs are unchanged,
    by `cache`, is not drawn or written); returns the seconds spent and what was drawn. The
    pages are split among the run's page processes (`workers`; by default this one alone)."""
    workers = workers or _Workers(env, data, reports_dir, 1)
    job = _Month(env, data, month, reports_dir, cache)
    began = time.perf_counter()
    pages = month_pages(data, month, job.folder)
    rendered = workers.render(job, pages)
    csv_text, json_text = export_texts(rendered.exports, month)
    _write_if_changed(job.folder / "figures.csv", csv_text, root=reports_dir)
    _write_if_changed(job.folder / "figures.json", json_text, root=reports_dir)
    cache.save()
    log.info("%s: %d pages rendered, %d unchanged (%d processes)", month_code(month), rendered.pages,
             len(cache.digests) - rendered.pages, workers.count)
    return {"pages_seconds": time.perf_counter() - began, "pages": rendered.pages,
            "chart_count": rendered.charts}


@dataclass(frozen=True)
class _Page:
    """One page of a month: where it is written, its template and the area it shows."""
    index: int          # its place among the month's pages: the first refused page is reported
    path: Path
    template: str
    area: Area


@dataclass
class _Month:
    """One month's rendering: the environment and data every page process has (forked with
    it), the month and its page cache (sent to each worker with the month)."""
    env: Environment
    data: ReportData
    month: date
    reports_dir: Path
    cache: PageCache

    @property
    def folder(self) -> Path:
        return self.reports_dir / month_code(self.month)


@dataclass
class _Rendered:
    """What a share of the pages reports back: each page's digest (for the manifest), how many
    pages and charts were drawn, and the error that stopped it, if any."""
    digests: dict[str, str | None] = field(default_factory=dict)
    pages: int = 0
    charts: int = 0
    error: BaseException | None = None
    exports: list[dict] = field(default_factory=list)     # the month's export rows, checked


_CONTEXTS = {"hwb_page.html.j2": hwb_page_context, "icb_page.html.j2": icb_page_context}
MIN_PAGES_PER_WORKER = 10    # below this a forked process costs more than it saves


def month_pages(data: ReportData, month: date, folder: Path) -> list[_Page]:
    """The month's pages in publishing order: each HWB's, then each ICB's (its HWBs side by side)."""
    areas = [("hwb_page.html.j2", a) for a in areas_of_type(data, month, "hwb")]
    areas += [("icb_page.html.j2", a) for a in areas_of_type(data, month, "icb")]
    return [_Page(i, folder / area.href, template, area) for i, (template, area) in enumerate(areas)]


def _checked_contexts(job: _Month, pages: list[_Page]) -> tuple[dict[_Page, dict], tuple | None]:
    """Each page's context, every one checked by sdc before any is written: (the contexts,
    None), or (those checked, (the index of the page refused, the error)) at the first refusal."""
    rollups = _rollups(job.data)
    contexts: dict[_Page, dict] = {}
    for page in pages:
        try:     # a refusal, or a page that cannot be built: either way no page of the month is written
            context = _CONTEXTS[page.template](job.data, job.month, page.area)
            sdc.check_publishable(context, where=str(page.path), rollups=rollups, checked=job.data.checked)
        except Exception as refused:
            return contexts, (page.index, refused)
        contexts[page] = context
    return contexts, None


def _checked_exports(job: _Month) -> list[dict]:
    exports = export_rows(job.data, job.month)
    sdc.check_publishable(exports, where=str(job.folder / "figures.csv"), rollups=_rollups(job.data),
                          checked=job.data.checked)
    return exports


def _rollups(data: ReportData) -> dict[str, str | None]:
    return {m.metric_id: m.rollup for m in data.metrics}     # the catalogue's exemptions


def _write_pages(job: _Month, contexts: dict[_Page, dict]) -> _Rendered:
    """Draw and write the pages whose inputs changed (by the month's page cache)."""
    changed = {page: ctx for page, ctx in contexts.items()
               if job.cache.changed(page.path, page.template, ctx)}
    svgs = charts.render_charts([s for ctx in changed.values() for s in _chart_specs(ctx)])
    svg_markup = {key: Markup(svg) for key, svg in svgs.items()}
    for page, context in changed.items():
        if _page_path_is_safe(job.folder, page.path):
            _write(page.path, job.env.get_template(page.template).render(context, charts=svg_markup),
                   root=job.reports_dir)
    return _Rendered(dict(job.cache.digests), len(changed), len(svgs))


def _worker_count(pages: int) -> int:
    return max(1, min(2, os.cpu_count() or 1, pages // MIN_PAGES_PER_WORKER))


def _page_count(data: ReportData, month: date) -> int:
    """How many pages the month has (an HWB's or ICB's each), without building them."""
    return sum(kind in ("hwb", "icb") for kind in data.present.get(month, {}).values())


class _Workers:
    """The run's page processes: this one and `count - 1` forked once, after the report data is
    read, each rendering its share of every month's pages (pages[i::count], interleaved: ICB
    pages cost more; share 0 is this process's). Living for the whole run, each keeps what it
    computed for one month (figures, SPC, disclosure checks) for the next, which shows 23 of
    the same 24 months. This process working too, rather than waiting on `count` forks, keeps
    one fewer copy of the data's pages in memory.

    Each month: every share is built and checked, and the exports checked; only when all
    passed are the pages written, so a refused page still means nothing of the month is
    written, and the first refused page in publishing order is the error raised, as in one
    process. A worker that dies ends the pool: the month fails with an error saying so, and
    the run's later months render in this process alone."""

    def __init__(self, env: Environment, data: ReportData, reports_dir: Path, count: int) -> None:
        for template in _CONTEXTS:
            env.get_template(template)      # compiled once, here, rather than in each worker
        self.count, self.links = count, []
        fork = multiprocessing.get_context("fork")
        for share in range(1, count):
            ours, theirs = fork.Pipe()
            process = fork.Process(target=_worker_loop, daemon=True,
                                   args=(theirs, env, data, reports_dir, share, count))
            process.start()
            theirs.close()
            self.links.append((process, ours))

    def render(self, job: _Month, pages: list[_Page]) -> _Rendered:
        try:
            return self._render(job, pages)
        except _WorkerLost:
            self.close()
            raise

    def _render(self, job: _Month, pages: list[_Page]) -> _Rendered:
        for _process, ours in self.links:
            ours.send((job.month, job.cache))
        export_error = None
        try:
            exports = _checked_exports(job)      # while the workers build their pages
        except Exception as refused:
            exports, export_error = [], refused
        contexts, refusal = _checked_contexts(job, pages[0::self.count])
        replies = [self._receive(process, link) for process, link in self.links]
        refusals = sorted((r for r in [refusal, *replies] if r is not None), key=lambda r: r[0])
        for (_process, link), reply in zip(self.links, replies):
            if reply is None:               # waiting to be told whether to write
                link.send(not refusals and export_error is None)
        if refusals or export_error:
            raise refusals[0][1] if refusals else export_error
        own = _write_pages(job, contexts)
        rendered = _merged(job, pages, [own] + [self._receive(process, link) for process, link in self.links])
        rendered.exports = exports
        return rendered

    @staticmethod
    def _receive(process, link):
        """The worker's next message; a worker that died without one is an error, not a hang."""
        try:
            return link.recv()
        except EOFError:
            process.join()
            raise _WorkerLost(f"a report page worker stopped (exit code {process.exitcode})") from None

    def close(self) -> None:
        for process, ours in self.links:
            try:
                ours.send(None)             # no more months
            except OSError:
                pass
            ours.close()
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        self.links, self.count = [], 1      # what is left renders in this process alone

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _WorkerLost(RuntimeError):
    """A page worker died: its month is not rendered, and the pool is not used again."""


def _merged(job: _Month, pages: list[_Page], shares: list[_Rendered]) -> _Rendered:
    """The workers' results as the parent's, the digests in publishing order for the manifest."""
    for share in shares:
        if share.error is not None:
            raise share.error
    digests = {name: d for share in shares for name, d in share.digests.items()}
    job.cache.digests = {p.path.name: digests[p.path.name] for p in pages}
    return _Rendered(job.cache.digests, sum(s.pages for s in shares), sum(s.charts for s in shares))


def _worker_loop(link, env: Environment, data: ReportData, reports_dir: Path, share: int,
                 count: int) -> None:
    """In a forked process (never touching the database connection), for each month the
    parent sends: check this share of its pages and send (page index, error) or None; if told
    to go on, write them and send _Rendered. None, or the parent gone, ends it."""
    while True:
        try:
            order = link.recv()
        except EOFError:
            return
        if order is None:
            return
        month, cache = order
        job = _Month(env, data, month, reports_dir, cache)
        pages = month_pages(data, month, job.folder)[share::count]
        contexts, refusal = _checked_contexts(job, pages)
        if refusal:
            link.send((refusal[0], _portable(refusal[1])))
            continue
        link.send(None)
        try:
            if not link.recv():
                continue
        except EOFError:        # the parent is gone
            return
        try:
            link.send(_write_pages(job, contexts))
        except Exception as error:
            link.send(_Rendered(error=_portable(error)))


def _portable(error: Exception) -> Exception:
    """The error itself when it can be sent to the parent, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")


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
    pages were written (page_cache.month_key) is neither read nor rendered. The data is read
    once, here; then up to two page processes are forked (`_Workers`, never touching `con`),
    which render their share of each month's pages. A month that fails (a refused page, a
    bug) is logged and the others still render; the earliest failure is raised at the end."""
    reports_dir = Path(reports_dir)
    months = _months_to_render(con, months)
    fingerprint = inputs_fingerprint(con)
    caches = {m: PageCache(reports_dir / month_code(m), fingerprint) for m in months}
    changed = [m for m in months if not caches[m].month_unchanged()]
    for month in sorted(set(months) - set(changed)):
        log.info("%s: unchanged, nothing rendered", month_code(month))
    env = make_environment()
    totals: dict[str, float] = defaultdict(float)
    failures: dict[date, Exception] = {}
    with _cyclic_gc_paused():
        data = (load_report_data(con, add_months(changed[0], 1 - WINDOW_MONTHS), changed[-1])
                if changed else load_index_data(con))
        gc.freeze()     # the data lives as long as the run: the collector never walks it
        count = _worker_count(max(_page_count(data, m) for m in changed)) if changed else 1
        with _Workers(env, data, reports_dir, count) as workers:
            for month in changed:
                try:
                    for key, seconds in render_month(env, data, month, reports_dir, caches[month],
                                                     workers).items():
                        totals[key] += seconds
                except Exception as error:   # a refused page or a bug in one month must not stop the others
                    failures[month] = error
                    log.error("%s: not rendered (a refused page or export writes nothing of the "
                              "month; its earlier pages stay): %s", month_code(month),
                              withhold_numbers(f"{type(error).__name__}: {error}"))
    index = reports_dir / "index.html"
    _write_if_changed(index, env.get_template("index.html.j2").render(
        index_context(data, months, reports_dir)), root=reports_dir)
    log.info("rendered %d months, %d pages, %d charts in %.2fs", len(changed) - len(failures),
             totals["pages"], totals["chart_count"], totals["pages_seconds"])
    if failures:
        raise _first_failure(failures)
    return index


@contextmanager
def _cyclic_gc_paused():
    """Report data and pages are millions of objects with almost no reference cycles (a few
    dozen objects a month, measured), freed by reference counting. Python's cyclic collector
    would walk them over and over as they are made (about a fifth of a national month's
    time): it is paused while the data is read and the months render, and left to run again
    afterwards. Forked page workers inherit the pause, so they do not copy the data's memory by
    walking it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _first_failure(failures: dict[date, Exception]) -> Exception:
    """The earliest failed month's error, raised once every other month and the index are
    written, so the run still fails and says why; the others are in the log and in a note."""
    first = failures[min(failures)]
    if len(failures) > 1:
        first.add_note("Months not rendered: " + ", ".join(month_code(m) for m in sorted(failures)))
    return first
