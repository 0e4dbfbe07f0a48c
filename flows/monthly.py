"""The monthly flow: load what is new, rebuild the month and any stale months, audit, report."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from flows import pipeline
from flows.errors import MonthsFailed
from flows.months import parse_month, previous_month
from flows.settings import Settings, load_settings

# The database is the state: Prefect must never skip a step from a cache. Only reading extracts
# (I/O) is retried; SQL and rendering are not, as a retry would only repeat a bug.


@task(name="load-extracts", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def load_extracts(con, settings: Settings, record: pipeline.RunRecord):
    """Load every new extract in the landing folder into DuckDB."""
    with record.timed("load"):
        record.load = pipeline.load_step(
            con, settings, on_file=lambda r: record.progress.advance("load", r.file_name))
    return record.load


@task(name="plan-months", cache_policy=NO_CACHE)
def plan_months(con, months: list[date], record: pipeline.RunRecord, options: dict):
    """Decide which months and models are stale, and why."""
    with record.timed("plan"):
        record.plans = pipeline.plan_step(con, months, **options)
    return record.plans


@task(name="build-metrics", cache_policy=NO_CACHE)
def build_metrics(con, record: pipeline.RunRecord):
    """Rebuild each stale month atomically, with its blocking audits."""
    with record.timed("build", total=len(record.plans)):
        record.build = pipeline.build_step(
            con, record.plans, record.run_id,
            on_month=lambda p: record.progress.advance("build", f"{p.month:%Y-%m}"))
    return record.build


@task(name="render-reports", cache_policy=NO_CACHE)
def render_reports(con, settings: Settings, months: list[date], record: pipeline.RunRecord):
    """Render the HTML pages, index and exports for the months."""
    with record.timed("report"):
        months = pipeline.months_to_report(con, months, record.build)
        record.report_index = pipeline.report_step(con, settings, months) if months else None
    return record.report_index


def call_task(step, *args):
    """Run a step as a Prefect task (the default)."""
    return step(*args)


def call_plain(step, *args):
    """Run a step as a plain function: no Prefect API at all."""
    return step.fn(*args)


def dry_run_plan(*, flow_name: str, months: list[date], settings: Settings, parameters: dict,
                 include_stale: bool = False) -> pipeline.RunRecord:
    """What a run would rebuild and why; opens the database read-only and changes nothing."""
    record = pipeline.RunRecord(flow_name, parameters)
    if settings.db.exists():
        con = pipeline.db.connect(settings.db, read_only=True)
        try:
            record.plans = pipeline.plan_step(con, months, include_stale=include_stale, dry_run=True,
                                              force=parameters.get("force", False))
        finally:
            con.close()
    else:
        record.plans = []
    return record


def run_job(*, flow_name: str, months: list[date], settings: Settings, parameters: dict,
            call=call_task, include_stale: bool = True, force: bool = False,
            progress: pipeline.Progress | None = None) -> pipeline.RunRecord:
    """The job both flows run. `call` runs a step: as a Prefect task, or plainly.

    Returns the record even when months failed (the caller reports them once the run is done:
    `flow_outcome`, or the CLI); any other error is recorded and raised."""
    record = pipeline.RunRecord(flow_name, parameters)
    if progress:
        record.progress = progress
    with pipeline.open_writer(settings) as con:
        try:
            call(load_extracts, con, settings, record)
            call(plan_months, con, months, record, {"include_stale": include_stale, "force": force})
            call(build_metrics, con, record)
            call(render_reports, con, settings, months, record)
        except Exception as error:
            pipeline.record_run(con, record, status="failed", message=str(error).splitlines()[0])
            raise
        # A month rolled back by its audits (or an error) does not stop the others: the run
        # ends as failed only now, once every month is done (see raise_if_months_failed).
        failed = pipeline.failed_months_line(record)
        pipeline.record_run(con, record, status="failed" if failed else "completed", message=failed)
    return record


def flow_outcome(record: pipeline.RunRecord):
    """What a flow returns once every month is done: its result, or, when months were rolled
    back, a Failed state whose message names them. Returning the state (not raising) ends the
    flow run Failed without a traceback in its logs; a caller of the flow gets MonthsFailed."""
    failed = pipeline.failed_months_line(record)
    if failed:
        return Failed(message=failed, data=MonthsFailed(failed))
    return {"run_id": record.run_id, "report_index": str(record.report_index or "")}


def publish_artifacts(record: pipeline.RunRecord) -> None:
    """A markdown summary and a link to the report index, on the Prefect run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    create_markdown_artifact(markdown=pipeline.summary_markdown(record), key="run-summary",
                             description="Files loaded and rejected, months built, audits")
    if record.report_index:
        create_link_artifact(link=Path(record.report_index).resolve().as_uri(), key="report-index",
                             link_text="Report index", description="The month's reports")


@flow(name="monthly", log_prints=True)
def monthly_flow(month: str | None = None, landing: str | None = None, db: str | None = None,
                 reports: str | None = None, wait: float | None = None) -> dict:
    """Load new extracts, rebuild the month and any stale months, audit, and render the report.

    Args:
        month: The month to report, YYYY-MM; empty means the calendar month before today.
        landing: Landing folder; empty means JOINEDUP_LANDING on the worker.
        db: DuckDB file; empty means JOINEDUP_DB on the worker.
        reports: Reports folder; empty means JOINEDUP_REPORTS on the worker.
        wait: Seconds to wait for another run holding the database; empty means
            JOINEDUP_LOCK_WAIT on the worker (0: fail at once).
    """
    settings = load_settings(landing=landing, db=db, reports=reports, lock_wait=wait)
    months = [parse_month(month) if month else previous_month()]
    record = run_job(flow_name="monthly", months=months, settings=settings,
                     parameters={"month": month})
    publish_artifacts(record)
    return flow_outcome(record)
