"""A month whose blocking audit fails (or whose build raises) keeps its previous figures, and the
run goes on to every other month; it ends non-zero only at the end, with one line naming them.

The failing month is real: NHS England's A&E file for May 2025 with its TOTAL row changed, so
the audit `published_totals_match` blocks it (tests/data/nhse-ae-monthly-2025-26).
"""
from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows import pipeline
from flows.backfill import backfill_flow
from flows.cli import app
from flows.errors import MonthsFailed
from flows.models import runner
from flows.monthly import call_plain, run_job
from flows.settings import load_settings
from tests.conftest import TEST_DATA, write_csv

AE_DIR = TEST_DATA / "nhse-ae-monthly-2025-26"
MONTHS = ("2025-04", "2025-05", "2025-06")
FAILING = "2025-05"
AUDIT = "published_totals_match"
ONE_LINE = (f"joinedup: 1 month failed its audits and was rolled back: "
            f"{FAILING} ({AUDIT}; no figures yet)")
ONE_LINE_KEPT = ONE_LINE.replace("no figures yet", "previous figures kept")


def first(month: str) -> date:
    return date.fromisoformat(month + "-01")


def write_reference(landing: Path) -> None:
    write_csv(landing / "orgs_all.csv", "ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
              "QOP,ICB,NHS Greater Manchester Integrated Care Board,",
              "E08000003,HWB,Manchester,QOP",
              "R0A,PROVIDER,Manchester University NHS Foundation Trust,QOP")
    write_csv(landing / "population_ONS_2025.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              *(f"E08000003,2025,{sex},{age},100" for sex in (1, 2) for age in (30, 70)))


def write_ae(landing: Path, month: str, *, name: str | None = None, wrong_total: bool = False) -> None:
    """NHS England's file for the month; with `wrong_total`, its TOTAL row's Type 1 attendances
    are one more than the sum of the provider rows."""
    lines = (AE_DIR / f"{month}.csv").read_text().splitlines(keepends=True)
    if wrong_total:
        at = next(i for i, line in enumerate(lines) if line.startswith("TOTAL,"))
        fields = lines[at].rstrip("\r\n").split(",")
        fields[4] = str(int(fields[4]) + 1)
        lines[at] = ",".join(fields) + "\n"
    (landing / (name or f"ae {month}.csv")).write_text("".join(lines))


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("JOINEDUP_ORCHESTRATION", "direct")
    write_reference(tmp_path / "landing")
    return tmp_path


def cli(root: Path, *args: str):
    where = ["--landing", str(root / "landing"), "--db", str(root / "j.duckdb")]
    reports = ["--reports", str(root / "reports")] if args[0] != "status" else []
    return CliRunner().invoke(app, [*args, *where, *reports], terminal_width=100)


def query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def cells(root: Path, month: str) -> list[tuple]:
    return query(root / "j.duckdb", "select * from metric_cells where period_month = ? order by all",
                 [first(month)])


def latest_run(root: Path) -> dict:
    rows = query(root / "j.duckdb", """select status, months_built, message, failed_months, audits
                                       from run_log order by started_at desc limit 1""")
    status, built, message, failed, audits = rows[0]
    return {"status": status, "built": sorted(f"{m:%Y-%m}" for m in built), "message": message,
            "failed": json.loads(failed), "audits": json.loads(audits)}


def test_a_failed_month_keeps_its_figures_and_the_later_months_are_built(root):
    landing = root / "landing"
    for month in MONTHS:
        write_ae(landing, month)
    assert cli(root, "backfill", "--from", MONTHS[0], "--to", MONTHS[-1]).exit_code == 0
    before = {m: cells(root, m) for m in MONTHS}
    assert all(before.values())

    # May is revised with a TOTAL that does not match its rows; June is revised with a provider
    # row's figures changed, so June's figures change when it is rebuilt
    write_ae(landing, FAILING, name="ae may revised.csv", wrong_total=True)
    june = (AE_DIR / "2025-06.csv").read_text().splitlines()
    total_at = next(i for i, line in enumerate(june) if line.startswith("TOTAL,"))
    row, total = june[1].split(","), june[total_at].split(",")
    row[4], total[4] = str(int(row[4]) + 10), str(int(total[4]) + 10)      # Type 1 attendances
    june[1], june[total_at] = ",".join(row), ",".join(total)
    (landing / "ae june revised.csv").write_text("\n".join(june) + "\n")

    ran = cli(root, "backfill", "--from", MONTHS[0], "--to", MONTHS[-1], "--force")

    assert ran.exit_code == 1, ran.output
    assert ran.stderr.strip().splitlines()[-1] == ONE_LINE_KEPT
    assert "Traceback" not in ran.output
    # the failed month kept its previous figures; the months around it were rebuilt
    assert cells(root, FAILING) == before[FAILING]
    assert cells(root, "2025-06") != before["2025-06"]
    run = latest_run(root)
    assert run["status"] == "failed"
    assert run["built"] == ["2025-04", "2025-06"]
    assert run["message"] == ONE_LINE_KEPT.removeprefix("joinedup: ")
    assert [(f["month"], f["audits"], f["previous_figures_kept"]) for f in run["failed"]] == \
        [(FAILING, [AUDIT], True)]
    assert f"audit {AUDIT} failed for {FAILING}" in run["failed"][0]["reason"]
    assert {(a["month"], a["audit"]) for a in run["audits"] if a["severity"] == "fail"} == \
        {(FAILING, AUDIT)}
    # the summary printed by the run names the month and the audit
    assert "## Failed months" in ran.stderr
    assert f"- {FAILING} ({AUDIT}; previous figures kept)" in ran.stderr
    # the report was still rendered, for every month that has figures
    assert all((root / "reports" / m / "figures.csv").exists() for m in MONTHS)

    shown = cli(root, "status")
    assert shown.exit_code == 0, shown.output
    assert f"kept: {FAILING} ({AUDIT})" in shown.output
    assert f"Stale months: {FAILING}" in shown.output      # the next run tries it again


def test_a_month_failing_from_its_first_build_does_not_stop_the_months_after_it(root):
    landing = root / "landing"
    for month in MONTHS:
        write_ae(landing, month, wrong_total=month == FAILING)

    ran = cli(root, "run", "--month", "2025-06")

    assert ran.exit_code == 1, ran.output
    assert ran.stderr.strip().splitlines()[-1] == ONE_LINE
    assert cells(root, "2025-04") and cells(root, "2025-06")
    assert cells(root, FAILING) == []
    run = latest_run(root)
    assert run["built"] == ["2025-04", "2025-06"]
    assert run["failed"][0]["previous_figures_kept"] is False
    assert f"- {FAILING} ({AUDIT}; no figures yet: never built)" in ran.stderr
    # a month that failed its audits has no model_builds row: it stays stale
    assert query(root / "j.duckdb", "select count(*) from model_builds where period_month = ?",
                 [first(FAILING)])[0][0] == 0
    assert query(root / "j.duckdb", "select count(*) from audit_results where period_month = ? "
                 "and audit = ? and offending > 0", [first(FAILING), AUDIT])[0][0] == 1


def test_an_unexpected_error_in_one_month_fails_that_month_only(root, monkeypatch):
    landing = root / "landing"
    for month in MONTHS:
        write_ae(landing, month)
    real = runner._write_metric

    def broken_in_may(con, project, model, month, params, index):
        if month == first(FAILING):
            raise RuntimeError("disk hiccup while writing 9434765919\nsecond line")
        return real(con, project, model, month, params, index)

    monkeypatch.setattr(runner, "_write_metric", broken_in_may)
    settings = load_settings(landing=landing, db=root / "j.duckdb", reports=root / "reports")
    record = run_job(flow_name="backfill", months=[first(m) for m in MONTHS], settings=settings,
                     parameters={}, call=call_plain, include_stale=False)

    assert record.build.months_built == [first("2025-04"), first("2025-06")]
    [failure] = record.build.failed
    assert (failure.month, failure.audits) == (first(FAILING), [])
    assert failure.reason == "build error: RuntimeError: disk hiccup while writing " \
                             "<10-digit number withheld>"
    assert pipeline.failed_months_line(record).startswith(
        "1 month failed and was rolled back: 2025-05 (build error: RuntimeError: disk hiccup")
    assert cells(root, FAILING) == []
    assert latest_run(root)["status"] == "failed"
    assert "9434765919" not in json.dumps(latest_run(root))


def test_two_failed_months_are_named_on_one_line(root):
    landing = root / "landing"
    for month in MONTHS:
        write_ae(landing, month, wrong_total=month != "2025-06")

    ran = cli(root, "backfill", "--from", MONTHS[0], "--to", MONTHS[-1])

    assert ran.exit_code == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        f"joinedup: 2 months failed their audits and were rolled back: "
        f"2025-04 ({AUDIT}; no figures yet), 2025-05 ({AUDIT}; no figures yet)")
    assert latest_run(root)["built"] == ["2025-06"]


def test_a_prefect_flow_run_builds_every_month_then_ends_failed(prefect_harness, root, monkeypatch):
    monkeypatch.setenv("JOINEDUP_ORCHESTRATION", "prefect")
    landing = root / "landing"
    for month in MONTHS:
        write_ae(landing, month, wrong_total=month == FAILING)

    state = backfill_flow(from_month=MONTHS[0], to_month=MONTHS[-1], landing=str(landing),
                          db=str(root / "j.duckdb"), reports=str(root / "reports"),
                          return_state=True)

    assert state.is_failed()
    assert state.message == ONE_LINE.removeprefix("joinedup: ")
    with pytest.raises(MonthsFailed, match=FAILING):
        state.result()
    assert cells(root, "2025-06") and cells(root, FAILING) == []
    assert latest_run(root)["built"] == ["2025-04", "2025-06"]
    # through the CLI, the flow run's failure is the same one line and exit status 1
    ran = cli(root, "backfill", "--from", MONTHS[0], "--to", MONTHS[-1], "--force")
    assert ran.exit_code == 1
    assert ran.stderr.strip().splitlines()[-1] == ONE_LINE
    assert "Traceback" not in ran.stderr


def test_the_summary_escapes_what_it_names(root):
    record = pipeline.RunRecord("backfill", {})
    record.build = runner.BuildResult(failed=[runner.MonthFailure(
        first(FAILING), [], "build error: ValueError: a | b <c>", had_figures=True)])
    text = pipeline.summary_markdown(record)
    assert "- 2025-05 (build error; previous figures kept): build error: ValueError: a \\| b \\<c\\>" \
        in text
    shutil.rmtree(root / "landing")
