"""A database the previous version made opens, migrates once and works (flows/schema.py).

The previous version wrote every area's cell with its value, plan and status into metric_cells
(and a metric_values view over it), had no metric_catalog.denominator_rollup and recorded no
schema version; a version before it had no run_log.failed_months. The fixture turns a database
built by this version into that shape, with fingerprints no build of this version made.
"""
from __future__ import annotations

import shutil

import duckdb
import pytest

from flows import pipeline, schema
from flows.settings import Settings
from tests.contract import contract_problems
from tests.sql.conftest import APC_HEADER, HWB_A, HWB_B, write_csv, write_reference

PREVIOUS_CELLS = """
create table metric_cells (
    period_month date not null, area_type varchar not null, area_code varchar not null,
    metric_id varchar not null, numerator double, denominator double, value double,
    plan_value double, status varchar not null,
    primary key (period_month, area_type, area_code, metric_id)
);
create or replace view metric_values as
    select period_month, area_type, area_code, metric_id, numerator, denominator, value,
           plan_value, status
    from metric_cells;
"""
VALUES = "select * from metric_values order by all"


def settings(root) -> Settings:
    return Settings(landing=root / "landing", db=root / "j.duckdb", reports=root / "reports",
                    pseudo_key=None, lock_wait=0.0)


def run(root) -> pipeline.RunRecord:
    record = pipeline.RunRecord("test", {})
    with pipeline.open_writer(settings(root)) as con:
        record.load = pipeline.load_step(con, settings(root))
        record.plans = pipeline.plan_step(con, [])
        record.build = pipeline.build_step(con, record.plans, record.run_id)
        pipeline.record_run(con, record, status="succeeded")
    return record


def as_previous_version(db) -> None:
    con = duckdb.connect(str(db))
    try:
        cells = con.execute("select * from metric_values").fetchall()
        for view in ("metric_values", "metric_plan_variance", "metric_spc", "provisional_cells",
                     "metric_areas"):
            con.execute(f"drop view {view}")
        con.execute("drop table metric_cells; drop table schema_version")
        con.execute(PREVIOUS_CELLS)
        con.executemany("insert into metric_cells values (?, ?, ?, ?, ?, ?, ?, ?, ?)", cells)
        con.execute("alter table metric_catalog drop column denominator_rollup")
        con.execute("alter table run_log drop column failed_months")
        con.execute("update model_builds set sql_fingerprint = 'made-by-the-previous-version'")
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two months built by this version: (root folder, metric_values)."""
    root = tmp_path_factory.mktemp("migration")
    landing = write_reference(root / "landing")
    for month in ("2025-05", "2025-06"):
        write_csv(landing / f"apc_R0A_{month}.csv", APC_HEADER,
                  f"R0A,{month}a,p1,70,1,{HWB_A},{month}-05,21,{month}-09,1,19,,I50,,",
                  f"R0A,{month}b,p2,40,2,{HWB_B},{month}-10,11,{month}-11,1,19,,R69X,,")
    run(root)
    con = duckdb.connect(str(root / "j.duckdb"), read_only=True)
    try:
        return root, con.execute(VALUES).fetchall()
    finally:
        con.close()


@pytest.fixture
def previous(built, tmp_path):
    root, values = built
    shutil.copytree(root, tmp_path, dirs_exist_ok=True)
    as_previous_version(tmp_path / "j.duckdb")
    return tmp_path, values


def test_a_previous_versions_database_migrates_and_rebuilds_to_the_same_figures(previous):
    root, values = previous
    record = run(root)
    assert {p.month for p in record.plans} == {p for (p, *_rest) in values}
    assert all(r.startswith("model SQL changed") for p in record.plans for r in p.models.values())
    con = duckdb.connect(str(root / "j.duckdb"), read_only=True)
    try:
        assert con.execute(VALUES).fetchall() == values
        assert contract_problems(con) == []
        assert schema.recorded_version(con) == schema.VERSION
        assert con.execute("select failed_months from run_log where run_id = ?",
                           [record.run_id]).fetchone() == ("[]",)
        # metric_cells keeps what the metrics compute: no ICB or England rows written back
        assert {r[0] for r in con.execute("select distinct area_type from metric_cells").fetchall()} == {"hwb"}
    finally:
        con.close()


def test_the_migration_keeps_the_computed_rows_and_records_its_version(previous):
    root, values = previous
    with pipeline.open_writer(settings(root)) as con:     # opens and migrates; builds nothing
        kept = con.execute("select period_month, area_type, area_code, metric_id, numerator, "
                           "denominator from metric_cells order by all").fetchall()
        assert con.execute("select * from schema_version").fetchall() == [(schema.VERSION,)]
    # the HWB rows stay, so a month whose rebuild fails still has its figures
    assert kept == sorted(v[:6] for v in values if v[1] == "hwb")
    with pipeline.open_writer(settings(root)) as con:     # a later open has nothing to migrate
        assert con.execute("select * from schema_version").fetchall() == [(schema.VERSION,)]
