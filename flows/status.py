"""`joinedup status`: what has run, what is loaded, what is stale, what is missing."""
from __future__ import annotations

import json

import duckdb
from rich.console import Console
from rich.table import Table

from flows.db import relation_exists
from flows.errors import UserError
from flows.models import runner
from flows.schema import has_column
from flows.settings import Settings


def show(settings: Settings, console: Console, *, runs: int = 10) -> None:
    if not settings.db.exists():
        raise UserError(f"no database at {settings.db}: run `joinedup run --month YYYY-MM` first")
    con = duckdb.connect(str(settings.db), read_only=True)
    try:
        console.print(_runs_table(con, runs))
        latest_failures = _latest_run_failures(con)
        if latest_failures:      # in full, on one line: a table cell may be cut to fit
            console.print(latest_failures, markup=False, highlight=False, soft_wrap=True)
        months = runner.loaded_months(con)
        console.print(f"Loaded months: {_span(months)}")
        plans = [p for p in runner.plan_months(con, runner.load_project(), months) if p.stale]
        console.print("Stale months: " + (", ".join(f"{p.month:%Y-%m} ({len(p.models)} models)"
                                                   for p in plans) or "none"))
        console.print(_missing_table(con))
    finally:
        con.close()


def _span(months) -> str:
    if not months:
        return "none"
    return f"{months[0]:%Y-%m} to {months[-1]:%Y-%m} ({len(months)} months)"


def _runs_table(con, limit: int) -> Table:
    table = Table(title="Latest runs")
    for column in ("started", "flow", "status", "months built", "files loaded", "rejected", "seconds"):
        table.add_column(column)
    if not relation_exists(con, "run_log"):
        return table
    rows = con.execute("""
        select started_at, flow, status, len(months_built), files_loaded, files_rejected,
               round(epoch(finished_at - started_at), 1)
        from run_log order by started_at desc limit ?""", [limit]).fetchall()
    for row in rows:
        table.add_row(f"{row[0]:%Y-%m-%d %H:%M}", *[str(v) for v in row[1:]])
    return table


def _latest_run_failures(con) -> str | None:
    # a read-only look cannot migrate: a database older than run_log.failed_months has none
    if not relation_exists(con, "run_log") or not has_column(con, "run_log", "failed_months"):
        return None
    row = con.execute("select run_id, failed_months from run_log "
                      "order by started_at desc limit 1").fetchone()
    text = failed_months_text(row[1]) if row else ""
    return (f"Failed months in the latest run ({row[0]}), rolled back; any previous figures were "
            f"kept: {text}") if text else None


def failed_months_text(failed_json: str | None) -> str:
    """'2025-03 (published_totals_match), 2025-07 (build error: ...)' from run_log.failed_months."""
    failures = json.loads(failed_json) if failed_json else []
    return ", ".join(f"{f['month']} ({', '.join(f['audits']) or f['reason']})" for f in failures)


def _missing_table(con) -> Table:
    table = Table(title="Missing deliveries (expected every month from the first delivery on)")
    for column in ("dataset", "organisation", "months missing"):
        table.add_column(column)
    if not relation_exists(con, "deliveries"):
        return table
    rows = con.execute("""
        select dataset, org_code, string_agg(strftime(period_month, '%Y-%m'), ', ' order by period_month)
        from deliveries where not received group by all order by all""").fetchall()
    for row in rows:
        table.add_row(*row)
    return table
