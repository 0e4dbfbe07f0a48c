"""A local metric is one SQL file: no Python change.

A copy of sql/ gets one new file, sql/metrics/local_long_stay_65plus.sql (the share of
discharges of people aged 65+ after a stay of 21 days or more), and the whole job (load, plan,
build with audits, render) runs on a tiny hand-made landing folder. The metric must be built,
be in metric_values for every HWB, the ICB and England in every month, be in metric_catalog (so in
the reports' methodology appendix), pass the audits and get a section on every page.

The runner, the code-list tables and the catalogue all read the project's sql/ from
flows.SQL_DIR at call time, so the test points that one name at the copy.
"""
from __future__ import annotations

import csv
import json
import shutil
from datetime import date
from pathlib import Path

import pytest

import flows
from flows import SQL_DIR, monthly
from flows.db import connect
from flows.models import runner
from flows.settings import Settings
from tests.sql.conftest import (
    APC_HEADER,
    ENGLAND,
    HWB_A,
    HWB_B,
    ICB,
    assert_cell,
    cells,
    write_csv,
    write_reference,
)

A, B = HWB_A, HWB_B
METRIC = "local_long_stay_65plus"
TITLE = "Discharges of people aged 65+ after a stay of 21 days or more (local)"
MONTHS = ("2025-08", "2025-09", "2025-10")

LOCAL_SQL = f"""/*
model: {METRIC}
kind: metric
metric_id: {METRIC}
title: {TITLE}
sort_order: 50
unit: percent
higher_is_better: false
numerator_label: discharges of people aged 65+ after a stay of 21 days or more
denominator_label: discharges of people aged 65+
grain: area_code (HWB of residence), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges
definition: Of canonical spells of people aged 65 or over at admission discharged in the month
  (DISDATE in the month; all admission methods, providers and deaths), the share whose stay
  (DISDATE - ADMIDATE) was 21 days or more. By HWB of residence. A local measure.
official_id: local
source: SUS/HES Admitted Patient Care (apc extracts).
*/
with discharges as (
    select
        area_code,
        count(*) filter (where length_of_stay >= 21) as long_stays,  -- 21 days or more
        count(*) as discharges
    from int_month_discharges
    where age >= 65  -- aged 65 or over at admission
    group by area_code
)

select
    h.area_code,
    coalesce(d.long_stays, 0) as numerator,
    coalesce(d.discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
"""


def local_sql_dir(tmp: Path) -> Path:
    target = tmp / "sql"
    shutil.copytree(SQL_DIR, target)
    (target / "metrics" / f"{METRIC}.sql").write_text(LOCAL_SQL)
    return target


def write_landing(landing: Path) -> Path:
    """Three months, two providers. Stays: 65+ in HWB_A: Aug 30d (long) + 5d; Sep 21d (long,
    exactly) + 20d; Oct 2d. HWB_B: a 25-day stay aged 64 (not 65+) in September, a 40-day stay
    aged 90 in October."""
    write_reference(landing)
    write_csv(landing / "apc_R0A_2025-08.csv", APC_HEADER,
              f"R0A,S1,P1,80,1,{A},2025-07-10,21,2025-08-09,1,19,,R69X,,",     # 30 days: long
              f"R0A,S2,P2,65,2,{A},2025-08-01,21,2025-08-06,1,19,,R69X,,")     # 5 days
    write_csv(landing / "apc_RM3_2025-08.csv", APC_HEADER,
              f"RM3,T1,Q1,40,1,{A},2025-08-01,21,2025-08-30,1,19,,R69X,,")     # aged 40: out
    write_csv(landing / "apc_R0A_2025-09.csv", APC_HEADER,
              f"R0A,S3,P3,70,1,{A},2025-09-01,21,2025-09-22,1,19,,R69X,,",     # 21 days exactly
              f"R0A,S4,P4,70,1,{A},2025-09-02,21,2025-09-22,4,79,,R69X,,",     # 20 days, died
              f"R0A,S5,P5,64,1,{B},2025-09-01,21,2025-09-26,1,19,,R69X,,")     # aged 64: out
    write_csv(landing / "apc_RM3_2025-09.csv", APC_HEADER,
              f"RM3,T2,Q2,90,2,{B},2025-09-20,21,,,,,R69X,,")                  # open
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              f"R0A,S6,P6,75,1,{A},2025-10-01,21,2025-10-03,1,19,,R69X,,")     # 2 days
    write_csv(landing / "apc_RM3_2025-10.csv", APC_HEADER,
              f"RM3,T2,Q2,90,2,{B},2025-09-20,21,2025-10-30,1,19,,R69X,,")     # 40 days: long
    return landing


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The job, run as the CLI runs it (no Prefect API), with the runner pointed at the copy."""
    tmp = tmp_path_factory.mktemp("local_metric")
    sql_dir = local_sql_dir(tmp)
    landing = write_landing(tmp / "landing")
    settings = Settings(landing=landing, db=tmp / "t.duckdb", reports=tmp / "reports",
                        pseudo_key=None, lock_wait=0.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flows, "SQL_DIR", sql_dir)  # the one place the project's sql/ is named
        record = monthly.run_job(flow_name="backfill", settings=settings, call=monthly.call_plain,
                                 months=[date.fromisoformat(m + "-01") for m in MONTHS],
                                 parameters={"from_month": MONTHS[0], "to_month": MONTHS[-1]},
                                 include_stale=False)
        project = runner.load_project()
    con = connect(settings.db)
    yield con, record, settings, project
    con.close()


def test_the_repository_does_not_have_the_metric():
    assert METRIC not in runner.load_project().models


def test_the_local_model_is_read_and_declares_what_it_reads(tmp_path):
    project = runner.load_project(local_sql_dir(tmp_path))
    assert runner.check_dependencies(project) == []
    model = project.models[METRIC]
    assert model.kind == "metric" and model.header["official_id"] == "local"
    assert project.datasets_of(METRIC) == project.datasets_of("long_stay_21plus")
    assert "apc" in project.datasets_of(METRIC)


def test_the_runner_builds_it_in_every_month(local_run):
    con, record, _settings, project = local_run
    firsts = [date.fromisoformat(m + "-01") for m in MONTHS]
    assert record.build.months_built == firsts
    assert record.build.models_run == len(firsts) * len(project.metrics)
    built = con.execute("select period_month from model_builds where model = ? order by 1",
                        [METRIC]).fetchall()
    assert [b[0] for b in built] == firsts
    assert f"{MONTHS[0]}: {len(project.metrics)} models" in monthly.pipeline.summary_markdown(record)


def test_it_is_in_metric_values_for_every_area_and_month(local_run):
    con = local_run[0]
    got = con.execute("""select period_month, area_type, area_code from metric_values
                         where metric_id = ? order by all""", [METRIC]).fetchall()
    expected = sorted((date.fromisoformat(m + "-01"), t, c) for m in MONTHS
                      for t, c in (("hwb", A), ("hwb", B), ("icb", ICB), ("england", ENGLAND)))
    assert got == expected
    aug = cells(con, METRIC, "2025-08")
    assert_cell(aug[A], 1, 2, 50.0)                # S1 of S1 S2 (T1 aged 40)
    assert_cell(aug[B], 0, 0, None)
    assert_cell(aug[ENGLAND], 1, 2, 50.0)
    sep = cells(con, METRIC, "2025-09")
    assert_cell(sep[A], 1, 2, 50.0)                # S3 (21 days exactly) of S3 S4
    assert_cell(sep[B], 0, 0, None)                # S5 aged 64; T2 still open
    assert_cell(sep[ICB], 1, 2, 50.0)
    oct_ = cells(con, METRIC, "2025-10")
    assert_cell(oct_[A], 0, 1, 0.0)
    assert_cell(oct_[B], 1, 1, 100.0)              # T2, 40 days
    assert_cell(oct_[ENGLAND], 1, 2, 50.0)


def test_it_is_in_the_metric_catalogue(local_run):
    con = local_run[0]
    row = con.execute("""select title, unit, higher_is_better, numerator_label, denominator_label,
                                definition, official_id, source, sql_file, datasets, rollup
                         from metric_catalog where metric_id = ?""", [METRIC]).fetchone()
    assert row is not None
    (title, unit, higher, num, den, definition, official, source, sql_file, datasets, rollup) = row
    assert (title, unit, higher, official, rollup) == (TITLE, "percent", False, "local", "hwb")
    assert num.startswith("discharges of people aged 65+") and den == "discharges of people aged 65+"
    assert definition.startswith("Of canonical spells of people aged 65 or over")
    assert "A local measure." in definition                      # continuation lines joined
    assert source.startswith("SUS/HES")
    assert sql_file == f"sql/metrics/{METRIC}.sql"
    assert "apc" in datasets
    # its place among the contract metrics follows sort_order
    order = [r[0] for r in con.execute("select metric_id from metric_catalog order by sort_order").fetchall()]
    assert order.index(METRIC) == order.index("reablement_at_home_91d") + 1


def test_it_passes_the_audits(local_run):
    con, record, _settings, _project = local_run
    failed = [a for a in record.build.audits if a["severity"] == "fail" and a["offending"]]
    assert failed == []
    per_month = con.execute("""select period_month, count(distinct audit) from audit_results
                               group by 1 order by 1""").fetchall()
    audits = len(runner.load_project().audits)
    assert per_month == [(date.fromisoformat(m + "-01"), audits) for m in MONTHS]
    assert con.execute("select count(*) from audit_results where severity = 'fail' and offending > 0"
                       ).fetchone()[0] == 0


def test_the_reports_have_a_section_and_a_methodology_entry_for_it(local_run):
    con, record, settings, _project = local_run
    assert record.report_index == settings.reports / "index.html"
    for month in MONTHS:
        for area in (A, B, ICB):
            page = (settings.reports / month / f"{area}.html").read_text()
            assert f'id="method-metric-{METRIC}"' in page                 # methodology appendix
            assert f"<code>sql/metrics/{METRIC}.sql</code>" in page
            assert page.count(TITLE) >= 3        # summary row, section heading, methodology
            assert "A local measure." in page
        with open(settings.reports / month / "figures.csv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["metric_id"] == METRIC]
        assert {r["area_code"] for r in rows} == {A, B, ICB, ENGLAND}
        assert {r["metric_title"] for r in rows} == {TITLE}
        figures = json.loads((settings.reports / month / "figures.json").read_text())
        assert METRIC in json.dumps(figures)


def test_a_later_run_with_nothing_new_does_no_work_for_it(local_run, monkeypatch):
    con, _record, settings, project = local_run
    sql_dir = project.models[METRIC].path.parent.parent
    monkeypatch.setattr(flows, "SQL_DIR", sql_dir)
    assert [p for p in runner.plan_months(con, project, runner.loaded_months(con)) if p.stale] == []
    assert [p for p in runner.plan_months(con, runner.load_project(), runner.loaded_months(con))
            if p.stale] == []


def test_write_catalog_accepts_a_project_from_another_directory(tmp_path):
    project = runner.load_project(local_sql_dir(tmp_path))
    con = connect(tmp_path / "t.duckdb")
    try:
        runner.write_catalog(con, project)
        assert con.execute("select sql_file from metric_catalog where metric_id = ?",
                           [METRIC]).fetchone() == (f"sql/metrics/{METRIC}.sql",)
    finally:
        con.close()
