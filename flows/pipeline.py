"""The steps of a joinedup run as plain functions: load, plan, build, report, record.

Prefect tasks (flows/monthly.py, flows/backfill.py) wrap these; the CLI can also run them with no
Prefect API at all. Each step takes the open database connection of the one writer process.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from flows import db
from flows.errors import SettingsError
from flows.ingest import loader
from flows.ingest.loader import LoadSummary, load_landing
from flows.lock import writer_lock
from flows.models import runner
from flows.settings import Settings

RUN_LOG_COLUMNS = ("run_id, flow, parameters, started_at, finished_at, status, months_built, "
                   "files_loaded, files_rejected, files_duplicate, rows_loaded, rows_quarantined, "
                   "audits, durations, report_index, message, failed_months")


class Progress:
    """Where a run reports its progress; this default shows nothing (Prefect runs log instead)."""

    def begin(self, step: str, total: int | None = None) -> None:
        pass

    def advance(self, step: str, label: str = "") -> None:
        pass

    def end(self, step: str) -> None:
        pass


@dataclass
class RunRecord:
    flow: str
    parameters: dict
    # letters a-p, like every id joinedup writes: a hex id can hold ten digits in a row
    run_id: str = field(default_factory=lambda: runner.letters(uuid.uuid4().bytes)[:12])
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    durations: dict[str, float] = field(default_factory=dict)
    load: LoadSummary | None = None
    build: runner.BuildResult | None = None
    report_index: Path | None = None
    plans: list[runner.MonthPlan] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress, repr=False)

    @contextmanager
    def timed(self, step: str, total: int | None = None):
        began = time.perf_counter()
        self.progress.begin(step, total)
        try:
            yield
        finally:
            self.progress.end(step)
            self.durations[step] = round(self.durations.get(step, 0) + time.perf_counter() - began, 3)


@contextmanager
def open_writer(settings: Settings):
    """Hold the writer lock, then open the database; one writer process at a time."""
    with writer_lock(settings.db, wait_seconds=settings.lock_wait):
        con = db.connect(settings.db)   # creates or migrates the tables (flows/schema.py)
        try:
            yield con
        finally:
            con.close()


def load_step(con: duckdb.DuckDBPyConnection, settings: Settings, on_file=None) -> LoadSummary:
    """Load every new file in the landing folder."""
    if not settings.landing.is_dir():
        problem = "is not a folder" if settings.landing.exists() else "does not exist"
        raise SettingsError(f"the landing folder {settings.landing} {problem}: point "
                            "--landing or JOINEDUP_LANDING at the folder the extracts arrive in")
    return load_landing(con, settings.landing, pseudo_key=settings.pseudo_key, on_file=on_file)


def plan_step(con, months: list[date] | None, *, include_stale: bool = True, force: bool = False,
              dry_run: bool = False) -> list[runner.MonthPlan]:
    """Which months and models to rebuild: the requested months, plus (for a scheduled run)
    any stale loaded month. A dry run writes nothing."""
    project = runner.load_project()
    if not dry_run:
        runner.write_catalog(con, project)   # the build step creates the views
    available = runner.loaded_months(con)
    wanted = set(months or [])
    candidates = sorted((wanted & set(available)) | (set(available) if include_stale else set()))
    plans = runner.plan_months(con, project, candidates)
    if force:
        for plan in plans:
            for model in project.metrics:
                plan.models.setdefault(model.name, "rebuild requested (--force)")
    return [p for p in plans if p.stale]


def build_step(con, plans: list[runner.MonthPlan], run_id: str, on_month=None) -> runner.BuildResult:
    """Rebuild the planned months, each in one transaction with its audits."""
    project = runner.load_project()
    return runner.build_months(con, project, plans, run_id=run_id, on_month=on_month)


def report_step(con, settings: Settings, months: list[date]) -> Path:
    """Render the reports for these months (pages, index, exports)."""
    from flows.publish.report import render_reports  # templates load only when reports render

    return render_reports(con, settings.reports, months)


def record_run(con, record: RunRecord, *, status: str, message: str | None = None) -> None:
    """Keep the run's history in DuckDB, so it survives without a Prefect server."""
    load, build = record.load, record.build
    results = load.results if load else []
    con.execute(
        f"insert or replace into run_log ({RUN_LOG_COLUMNS}) values "
        "(?, ?, ?, ?, current_timestamp, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [record.run_id, record.flow, json.dumps(record.parameters, default=str), record.started,
         status, build.months_built if build else [],
         sum(r.status == "loaded" for r in results), sum(r.status == "rejected" for r in results),
         sum(r.status == "duplicate" for r in results), sum(r.rows_loaded for r in results),
         sum(r.rows_quarantined for r in results),
         json.dumps([_audit_json(a) for a in (build.audits if build else []) if a["offending"]]),
         json.dumps(record.durations), str(record.report_index) if record.report_index else None,
         message, json.dumps([_failure_json(f) for f in failed_months(record)])])


def failed_months(record: RunRecord) -> list[runner.MonthFailure]:
    return record.build.failed if record.build else []


def _failure_json(failure: runner.MonthFailure) -> dict:
    return {"month": f"{failure.month:%Y-%m}", "audits": failure.audits, "reason": failure.reason,
            "previous_figures_kept": failure.had_figures}


def failed_months_line(record: RunRecord) -> str | None:
    """One line naming every month whose rebuild was rolled back, why, and what it shows now.

    e.g. '2 months failed their audits and were rolled back: 2025-03 (published_totals_match;
    previous figures kept), 2025-07 (published_totals_match; no figures yet)'."""
    failures = failed_months(record)
    if not failures:
        return None
    one = len(failures) == 1
    what = "its audits" if one else "their audits"
    if any(not f.audits for f in failures):      # a build error is not an audit's finding
        what = ""
    verb = f"failed {what}".strip()
    named = ", ".join(f"{f.month:%Y-%m} ({', '.join(f.audits) or f.reason}; "
                      f"{'previous figures kept' if f.had_figures else 'no figures yet'})"
                      for f in failures)
    months = "1 month" if one else f"{len(failures)} months"
    return f"{months} {verb} and {'was' if one else 'were'} rolled back: {named}"


def _audit_json(audit: dict) -> dict:
    return {**audit, "month": f"{audit['month']:%Y-%m}"}


def months_to_report(con, requested: list[date], build: runner.BuildResult | None) -> list[date]:
    """The requested months that have figures, plus every month rebuilt in this run."""
    have = {r[0] for r in con.execute("select distinct period_month from metric_cells").fetchall()}
    rebuilt = set(build.months_built) if build else set()
    return sorted((set(requested) & have) | rebuilt)


def summary_markdown(record: RunRecord, *, rendered: bool = True) -> str:
    """The run's summary for people: files, months, audits, where the report is. For a
    Markdown renderer, names and reasons are escaped; `rendered=False` keeps them as written,
    for plain-text logs."""
    cell = _md if rendered else str
    lines = [f"# joinedup {record.flow} run {record.run_id}", ""]
    if record.load:
        lines += ["## Files", "", "| file | status | rows in | loaded | quarantined | reason |",
                  "|---|---|---:|---:|---:|---|"]
        lines += [f"| {cell(r.file_name)} | {r.status} | {r.rows_in} | {r.rows_loaded} | "
                  f"{r.rows_quarantined} | {cell(r.reason or '')} |" for r in record.load.results]
        if not record.load.results:
            lines.append("| (no new files) | | | | | |")
        skipped = loader.skipped_summary(record.load)
        lines += ["", cell(skipped)] if skipped else []
        lines.append("")
    lines += ["## Months", ""]
    if record.plans:
        lines += [f"- {p.month:%Y-%m}: {len(p.models)} models ({_reasons(p)})" for p in record.plans]
    else:
        lines.append("- nothing was stale: no model work was needed")
    audits = [a for a in (record.build.audits if record.build else []) if a["offending"]]
    lines += ["", "## Audits", ""]
    lines += [f"- {a['audit']} ({a['severity']}) {a['month']:%Y-%m}: {a['offending']} rows"
              for a in audits] or ["- all audits passed"]
    lines += _failed_months_lines(record, cell)
    if record.report_index:
        lines += ["", f"Report index: {record.report_index}"]
    return "\n".join(lines)


def _failed_months_lines(record: RunRecord, cell) -> list[str]:
    failures = failed_months(record)
    if not failures:
        return []
    lines = ["", "## Failed months", "",
             "These months were rolled back; the other months were built.", ""]
    for f in failures:
        kept = "previous figures kept" if f.had_figures else "no figures yet: never built"
        lines.append(f"- {f.month:%Y-%m} ({cell(', '.join(f.audits) or 'build error')}; {kept}): "
                     f"{cell(f.reason)}")
    return lines


def _md(text: str) -> str:
    """Text shown as written in a Markdown table: a reason's `<dataset>` is not an HTML tag,
    its `[_<text>]` not a link, and a `|` does not end the cell."""
    return re.sub(r"([\\|<>\[\]*`])", r"\\\1", text)


def _reasons(plan: runner.MonthPlan) -> str:
    reasons = sorted(set(plan.models.values()))
    return "; ".join(reasons[:2]) + (" …" if len(reasons) > 2 else "")
