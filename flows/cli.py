"""The joinedup command line: demo, run, backfill, status."""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.errors import MonthsFailed, UserError
from flows.settings import load_settings, orchestration_mode

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Monthly health and social care integration metrics.")
console = Console(stderr=True)
DEMO_KEY = "joinedup-demo-key-not-for-real-data"

LandingOpt = typer.Option(None, "--landing", help="Landing folder [env JOINEDUP_LANDING; data/landing]")
DbOpt = typer.Option(None, "--db", help="DuckDB file [env JOINEDUP_DB; data/joinedup.duckdb]")
ReportsOpt = typer.Option(None, "--reports", help="Reports folder [env JOINEDUP_REPORTS; reports]")
WaitOpt = typer.Option(None, "--wait", help="Seconds to wait for another run holding the database "
                                            "[env JOINEDUP_LOCK_WAIT; 0]")


def _use_prefect_api() -> bool:
    """With a Prefect API configured, runs are Prefect flow runs; without one, run in-process.

    JOINEDUP_ORCHESTRATION=prefect forces flow runs (Prefect then starts a temporary server);
    =direct runs the same steps with no Prefect API at all. "Configured" is what Prefect itself
    reads: PREFECT_API_URL from the environment or the active Prefect profile.
    """
    mode = orchestration_mode()
    if mode != "auto":
        return mode == "prefect"
    from prefect.settings import get_current_settings
    return bool(get_current_settings().api.url)


@contextmanager
def _one_line_errors():
    """A user's mistake, or a folder or file the run cannot use (OSError), ends the command
    with one line saying so and exit status 1, not a traceback."""
    try:
        yield
    except (UserError, OSError) as error:
        console.print(f"[red]joinedup: {escape(str(error))}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _settings(landing, db, reports, wait):
    return load_settings(landing=landing, db=db, reports=reports, lock_wait=wait)


def _run(flow_name: str, months, settings, parameters: dict, *, include_stale: bool, force=False):
    """Run the job as a Prefect flow run, or in-process with progress shown."""
    from flows import monthly, pipeline
    from flows.progress_log import IntervalLogProgress

    if _use_prefect_api():
        from flows.backfill import backfill_flow
        if flow_name == "monthly":
            return monthly.monthly_flow(month=parameters["month"], landing=str(settings.landing),
                                        db=str(settings.db), reports=str(settings.reports),
                                        wait=settings.lock_wait)
        return backfill_flow(from_month=parameters["from_month"], to_month=parameters["to_month"],
                             force=force, landing=str(settings.landing), db=str(settings.db),
                             reports=str(settings.reports), wait=settings.lock_wait)
    # Bars on a terminal; in cron or CI, log lines at intervals (flows/progress_log.py).
    with (RichProgress() if console.is_terminal else IntervalLogProgress()) as progress:
        record = monthly.run_job(flow_name=flow_name, months=months, settings=settings,
                                 parameters=parameters, call=monthly.call_plain,
                                 include_stale=include_stale, force=force, progress=progress)
    _print_record(record)
    return {"report_index": str(record.report_index or ""),
            "failed": pipeline.failed_months_line(record)}


class RichProgress:
    """Progress bars on standard error for the long steps of an in-process run."""

    LABELS = {"load": "Loading extracts", "plan": "Planning", "build": "Building months",
              "report": "Rendering reports"}

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        self.bars = Progress(SpinnerColumn(), TextColumn("{task.description:<18}"), BarColumn(),
                             MofNCompleteColumn(), TextColumn("{task.fields[item]}"),
                             TimeElapsedColumn(), console=console, transient=False)
        self.tasks = {}
        self.bars.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bars.__exit__(*exc)

    def begin(self, step: str, total: int | None = None) -> None:
        self.tasks[step] = self.bars.add_task(self.LABELS.get(step, step), total=total, item="")

    def advance(self, step: str, label: str = "") -> None:
        self.bars.update(self.tasks[step], advance=1, item=label)

    def end(self, step: str) -> None:
        task = self.tasks[step]
        done = self.bars.tasks[task].completed
        self.bars.update(task, total=done or 1, completed=done or 1, item="")


def _print_record(record) -> None:
    from rich.markdown import Markdown

    from flows.pipeline import summary_markdown

    # On a terminal, rendered; in cron and CI logs the Markdown text itself, whose table cells
    # are never cut to the width of a terminal that is not there.
    if console.is_terminal:
        console.print(Markdown(summary_markdown(record)))
    else:
        console.print(summary_markdown(record, rendered=False), markup=False, highlight=False,
                      soft_wrap=True)
    if record.durations:
        console.print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in record.durations.items()))


def _finish(result: dict) -> None:
    """Say where the report is; then, if months were rolled back, end with the one line naming
    them (exit status 1). A Prefect flow run raises the same error itself, as its final state."""
    _print_report(result)
    if result.get("failed"):
        raise MonthsFailed(result["failed"])


def _print_report(result: dict) -> None:
    index = result.get("report_index")
    if index:
        print(f"Report: {Path(index).resolve()}")
    else:
        print("No report rendered: no months with figures in the range.")


@app.command()
def run(month: str = typer.Option(..., "--month", help="The month to report, YYYY-MM"),
        landing: Path | None = LandingOpt, db: Path | None = DbOpt,
        reports: Path | None = ReportsOpt, wait: float | None = WaitOpt):
    """The scheduled job: load what is new, rebuild the month and any stale months, report."""
    from flows.months import parse_month
    with _one_line_errors():
        settings = _settings(landing, db, reports, wait)
        months = [parse_month(month)]
        _finish(_run("monthly", months, settings, {"month": month}, include_stale=True))


@app.command()
def backfill(from_month: str = typer.Option(..., "--from", help="First month, YYYY-MM"),
             to_month: str = typer.Option(..., "--to", help="Last month, YYYY-MM"),
             dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing"),
             force: bool = typer.Option(False, "--force", help="Rebuild every month in the range"),
             landing: Path | None = LandingOpt, db: Path | None = DbOpt,
             reports: Path | None = ReportsOpt, wait: float | None = WaitOpt):
    """Rebuild and re-render a range of months (stale ones, or all with --force)."""
    from flows import monthly
    from flows.months import parse_month, requested_range
    with _one_line_errors():
        settings = _settings(landing, db, reports, wait)
        months = requested_range(parse_month(from_month), parse_month(to_month))
        params = {"from_month": from_month, "to_month": to_month, "dry_run": dry_run, "force": force}
        if dry_run:
            _print_plan(monthly.dry_run_plan(flow_name="backfill", months=months,
                                             settings=settings, parameters=params), settings)
            return
        _finish(_run("backfill", months, settings, params, include_stale=False, force=force))


def _print_plan(record, settings) -> None:
    table = Table(title="Backfill plan (dry run: nothing changed)")
    for column in ("month", "model", "why"):
        table.add_column(column)
    for plan in record.plans:
        for model, reason in plan.models.items():
            table.add_row(f"{plan.month:%Y-%m}", model, reason)
    out = Console()
    out.print(table if record.plans else "Nothing to rebuild: every month in the range is up to date.")
    waiting = _unloaded(settings)
    if waiting:
        files = f"{len(waiting)} file{'s' if len(waiting) != 1 else ''}"
        out.print(f"{files} in {settings.landing} not loaded yet; a real run loads them first "
                  f"and may mark more months stale: {', '.join(waiting[:5])}", markup=False)


def _unloaded(settings) -> list[str]:
    """Landing files not seen before (read-only: a dry run changes nothing)."""
    import duckdb

    from flows.ingest.inspection import hash_files
    from flows.ingest.landing import files_to_inspect, landing_files, seen_files
    from flows.ingest.naming import display_name
    if not settings.db.exists():
        return [display_name(p.name) for p in landing_files(settings.landing)]
    con = duckdb.connect(str(settings.db), read_only=True)
    try:
        seen = seen_files(con)
        maybe_new = files_to_inspect(con, settings.landing, seen)
    finally:
        con.close()
    hashed = hash_files(maybe_new)      # a file that cannot be read is new: the run would try it
    return [display_name(p.name) for p in maybe_new
            if isinstance(hashed[p], Exception) or (display_name(p.name), hashed[p][1]) not in seen]


@app.command()
def demo(landing: Path | None = LandingOpt, db: Path | None = DbOpt,
         reports: Path | None = ReportsOpt, months: int = typer.Option(24, help="Months to generate"),
         seed: int = typer.Option(42, help="Random seed for the sample")):
    """Make a realistic sample landing folder and run every month in it end to end."""
    from sample.generate import generate_landing
    with _one_line_errors():
        # The sample's NHS numbers are synthetic; a real deployment sets its own secret key.
        if not os.environ.get("JOINEDUP_PSEUDO_KEY"):
            os.environ["JOINEDUP_PSEUDO_KEY"] = DEMO_KEY
        settings = _settings(landing, db, reports, None)
        began = time.perf_counter()
        summary = generate_landing(settings.landing, seed=seed, months=months)
        console.print(f"Sample landing folder: {settings.landing} ({len(summary.files)} files, "
                      f"{time.perf_counter() - began:.1f}s)")
        first, last = summary.months[0], summary.months[-1]
        params = {"from_month": first, "to_month": last, "dry_run": False, "force": False}
        from flows.months import month_range, parse_month
        result = _run("backfill", month_range(parse_month(first), parse_month(last)), settings,
                      params, include_stale=False)
        _finish(result)


@app.command()
def status(db: Path | None = DbOpt, landing: Path | None = LandingOpt,
           runs: int = typer.Option(10, help="How many recent runs to show")):
    """Latest runs, loaded months, stale months and missing deliveries."""
    from flows import status as status_view
    with _one_line_errors():
        settings = _settings(landing, db, None, None)
        status_view.show(settings, Console(), runs=runs)


def main() -> None:  # pragma: no cover - entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
