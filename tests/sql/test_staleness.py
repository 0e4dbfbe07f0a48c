"""Staleness: which months and models a run rebuilds, and why, on a small multi-month database.

One tiny hand-made landing folder (conftest's two HWBs in one ICB) with six months of apc
extracts, 2025-05 to 2025-10, from two providers:

  every provider and month: spell `a` (65, HWB_A, emergency, 7 days) and `b` (40, HWB_B,
  elective, 1 day), both admitted and discharged in the month;
  R0A also has a long spell L1 (80, HWB_A, emergency) admitted 2025-06-20, re-sent open in
  its June to September files and discharged on 2025-10-15 in its October file.

An apc file can change every month from its earliest admission (and the month before its
period, as an admission in the period can be a readmission) to its period, so:
  apc_RM3_2025-08 touches 2025-07 and 2025-08 only;
  apc_R0A_2025-09 touches 2025-06 (L1's admission) to 2025-09.

The database is built once per module; each test works on its own copy of the database file
and landing folder.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from flows import monthly, pipeline
from flows.db import connect
from flows.ingest.loader import load_landing
from flows.models.runner import build_months, load_project, loaded_months, plan_months
from flows.settings import Settings
from tests.sql.conftest import APC_HEADER, ENGLAND, HWB_A, HWB_B, build, cells, write_csv, write_reference

A, B = HWB_A, HWB_B
MONTHS = ["2025-05", "2025-06", "2025-07", "2025-08", "2025-09", "2025-10"]
FIRSTS = [date.fromisoformat(m + "-01") for m in MONTHS]
LONG_OPEN = f"R0A,L1,PL1,80,2,{A},2025-06-20,21,,,,,R69X,,"
LONG_CLOSED = f"R0A,L1,PL1,80,2,{A},2025-06-20,21,2025-10-15,1,19,,R69X,,"


def first(month: str) -> date:
    return date.fromisoformat(month + "-01")


def month_rows(provider: str, month: str, *, b_method: str = "11") -> list[str]:
    key = month.replace("-", "")
    return [f"{provider},{provider}{key}a,{provider}a{key},65,1,{A},{month}-05,21,{month}-12,1,19,,R69X,,",
            f"{provider},{provider}{key}b,{provider}b{key},40,2,{B},{month}-10,{b_method},{month}-11,1,19,,R69X,,"]


def r0a_rows(month: str) -> list[str]:
    rows = month_rows("R0A", month)
    if "2025-06" <= month <= "2025-09":
        rows.append(LONG_OPEN)
    elif month == "2025-10":
        rows.append(LONG_CLOSED)
    return rows


def write_base_landing(landing: Path) -> Path:
    write_reference(landing)
    for month in MONTHS:
        write_csv(landing / f"apc_R0A_{month}.csv", APC_HEADER, *r0a_rows(month))
        write_csv(landing / f"apc_RM3_{month}.csv", APC_HEADER, *month_rows("RM3", month))
    return landing


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The six months loaded and built once: (database file, landing folder)."""
    tmp = tmp_path_factory.mktemp("staleness")
    landing = write_base_landing(tmp / "landing")
    con = connect(tmp / "base.duckdb")
    build(con, landing)
    con.close()
    return tmp / "base.duckdb", landing


@pytest.fixture
def work(base, tmp_path):
    """A private copy of the built database and its landing folder."""
    db, landing = base
    shutil.copy(db, tmp_path / "t.duckdb")
    shutil.copytree(landing, tmp_path / "landing")
    return tmp_path / "t.duckdb", tmp_path / "landing"


@pytest.fixture
def con(work):
    con = connect(work[0])
    yield con
    con.close()


def stale(con, project=None) -> dict[date, dict[str, str]]:
    """{month: {model: reason}} for every loaded month that has a stale model."""
    project = project or load_project()
    return {p.month: p.models for p in plan_months(con, project, loaded_months(con)) if p.stale}


def apc_models(project) -> set[str]:
    return {m.name for m in project.metrics if "apc" in project.datasets_of(m.name)}


def builds(con) -> list[tuple]:
    return con.execute("select period_month, model, sql_fingerprint, input_fingerprint, "
                       "input_files, built_at from model_builds order by all").fetchall()


def settings_for(work, tmp_path) -> Settings:
    db, landing = work
    return Settings(landing=landing, db=db, reports=tmp_path / "reports", pseudo_key=None,
                    lock_wait=0.0)


# ------------------------------------------------------------------ the base database


def test_base_database_has_every_month_built_once(con):
    project = load_project()
    assert loaded_months(con) == FIRSTS
    built = con.execute("select period_month, count(*) from model_builds group by 1 order by 1").fetchall()
    assert built == [(m, len(project.metrics)) for m in FIRSTS]
    # L1 is in June's admissions (65+, HWB_A) and October's discharges (a long stay).
    assert cells(con, "emergency_admissions_65plus", "2025-06")[A][0] == 3    # R0A a, RM3 a, L1
    assert cells(con, "long_stay_21plus", "2025-10")[A][:2] == (1, 3)
    assert cells(con, "emergency_admissions", "2025-08")[B][0] == 0


# ------------------------------------------------------------------ (a) nothing changed


def test_nothing_changed_means_nothing_stale_and_no_model_work(con, work, tmp_path):
    project = load_project()
    assert stale(con, project) == {}
    before = builds(con)
    cells_before = con.execute("select * from metric_cells order by all").fetchall()
    result = build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="again")
    assert (result.months_built, result.models_run) == ([], 0)
    con.close()

    # the scheduled run itself: loads nothing new, plans nothing, builds nothing, renders nothing
    record = monthly.run_job(flow_name="monthly", months=[], settings=settings_for(work, tmp_path),
                             parameters={"month": None}, call=monthly.call_plain)
    assert record.load.results == []
    assert record.plans == []
    assert (record.build.months_built, record.build.models_run) == ([], 0)
    assert record.report_index is None
    assert "nothing was stale: no model work was needed" in pipeline.summary_markdown(record)

    again = connect(work[0])
    try:
        assert builds(again) == before                       # not even built_at moved
        assert again.execute("select * from metric_cells order by all").fetchall() == cells_before
    finally:
        again.close()


# ------------------------------------------------------------------ (b) one model's SQL changed


@pytest.fixture
def sql_copy(tmp_path) -> Path:
    from flows import SQL_DIR
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    return target


def test_changing_one_metrics_sql_makes_exactly_that_model_stale_in_every_month(con, sql_copy):
    path = sql_copy / "metrics" / "emergency_admissions_65plus.sql"
    text = path.read_text()
    assert text.count("age >= 65") == 1
    path.write_text(text.replace("age >= 65", "age >= 66"))      # a change of meaning
    changed = load_project(sql_copy)
    assert changed.fingerprint("emergency_admissions_65plus") != load_project().fingerprint(
        "emergency_admissions_65plus")

    plans = stale(con, changed)
    assert sorted(plans) == FIRSTS                               # every built month
    for month, models in plans.items():
        assert list(models) == ["emergency_admissions_65plus"], month
        assert models["emergency_admissions_65plus"].startswith("model SQL changed (")
        assert "emergency_admissions_65plus.sql" in models["emergency_admissions_65plus"]

    # building with the changed SQL rebuilds only that model, and its figures follow the SQL
    result = build_months(con, changed, plan_months(con, changed, loaded_months(con)), run_id="b")
    assert result.months_built == FIRSTS and result.models_run == len(FIRSTS)
    assert stale(con, changed) == {}
    assert cells(con, "emergency_admissions_65plus", "2025-06")[A][0] == 1    # only L1 (80): the 65s are out
    # ... and from the repository's SQL's point of view, that one model is now the stale one
    assert {m: list(models) for m, models in stale(con).items()} == {
        m: ["emergency_admissions_65plus"] for m in FIRSTS}


def test_a_comment_in_the_query_body_also_changes_the_fingerprint(con, sql_copy):
    path = sql_copy / "metrics" / "long_stay_21plus.sql"
    path.write_text(path.read_text().replace("from int_month_discharges",
                                             "from int_month_discharges  -- harmless comment"))
    plans = stale(con, load_project(sql_copy))
    assert {m: list(models) for m, models in plans.items()} == {m: ["long_stay_21plus"] for m in FIRSTS}


def test_changing_an_upstream_model_makes_its_dependent_metrics_stale(con, sql_copy):
    path = sql_copy / "intermediate" / "int_month_discharges.sql"
    path.write_text(path.read_text().replace("disdate - admidate as length_of_stay",
                                             "disdate - admidate + 0 as length_of_stay"))
    changed = load_project(sql_copy)
    expected = {m.name for m in changed.metrics
                if "int_month_discharges" in {u.name for u in changed.upstream(m.name)}}
    assert {"long_stay_21plus", "mean_length_of_stay"} <= expected
    assert expected < {m.name for m in changed.metrics}
    plans = stale(con, changed)
    assert sorted(plans) == FIRSTS
    for models in plans.values():
        assert set(models) == expected
        assert all("int_month_discharges.sql" in r for r in models.values())


def test_a_code_list_change_in_a_custom_sql_dir_makes_its_readers_stale(con, sql_copy):
    ref = sql_copy / "reference" / "ref_admission_method.csv"
    ref.write_text(ref.read_text() + "\n")                       # any byte change of the code list
    changed = load_project(sql_copy)
    plans = stale(con, changed)
    assert sorted(plans) == FIRSTS
    assert all(set(models) == apc_models(changed) for models in plans.values())


# ------------------------------------------------------------------ (c) a resubmission


def resubmit_rm3_august(landing: Path) -> Path:
    # spell b was sent as elective (11); the corrected file says emergency (21)
    return write_csv(landing / "apc_RM3_2025-08_resubmission.csv", APC_HEADER,
                     *month_rows("RM3", "2025-08", b_method="21"))


def test_a_resubmission_makes_exactly_the_months_its_spells_touch_stale(con, work):
    project = load_project()
    resubmit_rm3_august(work[1])
    summary = load_landing(con, work[1], pseudo_key=None)
    assert [(r.file_name, r.status) for r in summary.results] == [
        ("apc_RM3_2025-08_resubmission.csv", "loaded")]
    assert con.execute("select status from files where file_name = 'apc_RM3_2025-08.csv'"
                       ).fetchone() == ("superseded",)

    plans = stale(con, project)
    # its period and the month before (readmissions); every admission in it is in August
    assert sorted(plans) == [first("2025-07"), first("2025-08")]
    assert len(apc_models(project)) < len(project.metrics)       # some metrics read no apc
    for month, models in plans.items():
        assert set(models) == apc_models(project), month
        for reason in models.values():
            assert "replaced input apc_RM3_2025-08.csv" in reason
            assert "new input apc_RM3_2025-08_resubmission.csv" in reason

    result = build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="c")
    assert result.months_built == [first("2025-07"), first("2025-08")]
    assert result.models_run == 2 * len(apc_models(project))
    assert stale(con, project) == {}
    aug = cells(con, "emergency_admissions", "2025-08")
    assert aug[B][0] == 1 and aug[ENGLAND][0] == 3             # RM3 b now an emergency


# ------------------------------------------------------------------ (d) a long open spell


def test_a_long_open_spell_in_a_resubmission_makes_every_month_since_its_admission_stale(con, work):
    project = load_project()
    # September re-sent with a spell that was missing; L1 (admitted 2025-06-20) is still open
    write_csv(work[1] / "apc_R0A_2025-09_resubmission.csv", APC_HEADER,
              *r0a_rows("2025-09"), f"R0A,M1,PM1,90,1,{B},2025-09-03,21,2025-09-04,1,19,,R69X,,")
    load_landing(con, work[1], pseudo_key=None)
    touched = con.execute("""select m.month from file_months m join files f using (file_id)
                             where f.file_name = 'apc_R0A_2025-09_resubmission.csv' order by 1""").fetchall()
    assert [t[0] for t in touched] == [first(m) for m in ("2025-06", "2025-07", "2025-08", "2025-09")]

    plans = stale(con, project)
    assert sorted(plans) == [first(m) for m in ("2025-06", "2025-07", "2025-08", "2025-09")]
    for month, models in plans.items():
        assert set(models) == apc_models(project), month
        assert all("replaced input apc_R0A_2025-09.csv" in r for r in models.values())
    # May (before L1) and October (a later file) are untouched

    build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="d")
    assert stale(con, project) == {}
    assert cells(con, "emergency_admissions_65plus", "2025-09")[B][0] == 1   # M1


# ------------------------------------------------------------------ (e) backfill --dry-run


def file_state(path: Path) -> tuple:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns, path.stat().st_size


def test_backfill_dry_run_prints_months_models_and_reasons_and_changes_nothing(work, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    db, landing = work
    project = load_project()
    con = connect(db)
    resubmit_rm3_august(landing)
    load_landing(con, landing, pseudo_key=None)                 # loaded, not yet rebuilt
    con.close()
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER, *month_rows("R0A", "2025-11"))  # waiting

    def snapshot():
        import duckdb
        ro = duckdb.connect(str(db), read_only=True)
        try:
            return (builds(ro), ro.execute("select * from metric_cells order by all").fetchall(),
                    ro.execute("select file_id, status from files order by 1").fetchall())
        finally:
            ro.close()

    tables_before = snapshot()
    state_before = file_state(db)
    siblings_before = sorted(p.name for p in db.parent.iterdir())

    result = CliRunner().invoke(app, [
        "backfill", "--from", "2025-05", "--to", "2025-10", "--dry-run", "--db", str(db),
        "--landing", str(landing), "--reports", str(tmp_path / "reports")],
        env={"COLUMNS": "250", "JOINEDUP_ORCHESTRATION": "direct"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Backfill plan (dry run: nothing changed)" in out

    rows = set()
    for line in out.splitlines():
        m = re.match(r"^\W*(\d{4}-\d{2})\W+([a-z0-9_]+)\W+(.*?)\W*$", line)
        if m:
            rows.add((m[1], m[2], m[3]))
    expected_models = apc_models(project)
    assert {(mo, model) for mo, model, _ in rows} == {
        (mo, model) for mo in ("2025-07", "2025-08") for model in expected_models}
    for _mo, _model, reason in rows:
        assert "new input apc_RM3_2025-08_resubmission.csv" in reason
        assert "replaced input apc_RM3_2025-08.csv" in reason
    assert "not loaded yet" in out and "apc_R0A_2025-11.csv" in out

    assert file_state(db) == state_before                         # bytes and mtime unchanged
    assert snapshot() == tables_before                            # model_builds, cells, files
    assert sorted(p.name for p in db.parent.iterdir()) == siblings_before   # no lock, no wal
    assert not (tmp_path / "reports").exists()


def test_backfill_dry_run_with_nothing_stale_says_so(work, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    db, landing = work
    state_before = file_state(db)
    result = CliRunner().invoke(app, [
        "backfill", "--from", "2025-05", "--to", "2025-10", "--dry-run", "--db", str(db),
        "--landing", str(landing), "--reports", str(tmp_path / "reports")],
        env={"COLUMNS": "250", "JOINEDUP_ORCHESTRATION": "direct"})
    assert result.exit_code == 0, result.output
    assert "Nothing to rebuild: every month in the range is up to date." in result.output
    assert "not loaded yet" not in result.output
    assert file_state(db) == state_before
