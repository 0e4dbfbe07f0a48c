"""The backfill flow: rebuild and re-render a range of months after a resubmission or a change."""
from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from flows import pipeline
from flows.monthly import dry_run_plan, flow_outcome, publish_artifacts, run_job
from flows.months import parse_month, requested_range
from flows.settings import load_settings

# The Prefect UI renders these as a form and rejects a bad month before a run starts (the
# pattern is in the deployment's parameter schema; enforce_parameter_schema in prefect.yaml).
# Prefect takes each field's help text from the flow's docstring (Args:), not from Field().
Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2025-04"],
                             description="A month, YYYY-MM")]


@flow(name="backfill", log_prints=True)
def backfill_flow(from_month: Month, to_month: Month, dry_run: bool = False, force: bool = False,
                  landing: str | None = None, db: str | None = None,
                  reports: str | None = None, wait: float | None = None) -> dict:
    """Load once, rebuild the stale months of a range in order, and render their reports.

    Args:
        from_month: First month of the range, YYYY-MM (e.g. 2025-04).
        to_month: Last month of the range, YYYY-MM (e.g. 2025-09); the same as from_month for one.
        dry_run: Only print what would be rebuilt and why; change nothing.
        force: Rebuild every month in the range, stale or not.
        landing: Landing folder; empty means JOINEDUP_LANDING on the worker.
        db: DuckDB file; empty means JOINEDUP_DB on the worker.
        reports: Reports folder; empty means JOINEDUP_REPORTS on the worker.
        wait: Seconds to wait for another run holding the database; empty means
            JOINEDUP_LOCK_WAIT on the worker (0: fail at once).
    """
    settings = load_settings(landing=landing, db=db, reports=reports, lock_wait=wait)
    months = requested_range(parse_month(from_month), parse_month(to_month))
    parameters = {"from_month": from_month, "to_month": to_month, "dry_run": dry_run, "force": force}
    if dry_run:
        record = dry_run_plan(flow_name="backfill", months=months, settings=settings,
                              parameters=parameters)
        print(pipeline.summary_markdown(record, rendered=False))
        return {"run_id": record.run_id, "plan": plan_rows(record)}
    record = run_job(flow_name="backfill", months=months, settings=settings, parameters=parameters,
                     include_stale=False, force=force)
    publish_artifacts(record)
    return flow_outcome(record)


def plan_rows(record: pipeline.RunRecord) -> list[dict]:
    return [{"month": f"{p.month:%Y-%m}", "model": m, "reason": r}
            for p in record.plans for m, r in p.models.items()]
