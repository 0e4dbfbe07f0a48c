"""NHS England's A&E files of every layout generation since 2017-18, dropped into the landing
folder under download names, load through the real loader into DuckDB, pass their own TOTAL-row
checks and give England A&E figures equal to those TOTAL rows; a measure a layout lacks (booked
appointments before August 2020) is NULL, not zero.

Oracle: each file's own TOTAL row, read here with the csv module (the files are described in
tests/data/nhse_ae_historic/README.md).
"""
from __future__ import annotations

import gzip
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows import pipeline
from flows.settings import load_settings
from tests.conftest import write_csv
from tests.unit.test_published_historic import BOOKED, GENERATIONS, HISTORIC, PROVIDERS, published_total

ENGLAND = "E92000001"
ORGS = ("ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
        "QWO,ICB,NHS West Yorkshire Integrated Care Board,",
        "E08000035,HWB,Leeds,QWO",
        "RR8,PROVIDER,Leeds Teaching Hospitals NHS Trust,QWO")
# Browser download names: nothing in them says which month or layout the file holds.
DOWNLOADS = {"download.csv": "2017-18 to March 2020 (first month)",
             "download (1).csv": "2017-18 to March 2020 (last month)",
             "Monthly-AE.csv": "April to July 2020",
             "Monthly-AE (2).csv.gz": "August 2020 on"}
MONTHS = {GENERATIONS[g][1]: g for g in DOWNLOADS.values()}


def first_of(month: str) -> date:
    return date.fromisoformat(month + "-01")


def query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    """The four generations (one gzipped) with an orgs and a population file, loaded and built."""
    root = tmp_path_factory.mktemp("historic")
    landing = root / "landing"
    write_csv(landing / "orgs_all.csv", *ORGS)
    write_csv(landing / "population_ONS_2019.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              "E08000035,2019,1,40,1000", "E08000035,2019,2,70,500")
    for name, generation in DOWNLOADS.items():
        source = (HISTORIC / GENERATIONS[generation][0]).read_bytes()
        (landing / name).write_bytes(gzip.compress(source) if name.endswith(".gz") else source)
    settings = load_settings(landing=landing, db=root / "j.duckdb", reports=root / "r")
    record = pipeline.RunRecord("test", {})
    with pipeline.open_writer(settings) as con:
        record.load = pipeline.load_step(con, settings)
        record.plans = pipeline.plan_step(con, [])
        record.build = pipeline.build_step(con, record.plans, record.run_id)
    return root


def test_every_generation_loads_with_every_row_accounted_for(loaded):
    log = {row[0]: row[1:] for row in query(loaded / "j.duckdb", """
        select file_name, dataset, org_code, period, status, rows_in, rows_loaded, rows_quarantined
        from load_log where dataset = 'nhse_ae'""")}
    assert set(log) == set(DOWNLOADS)
    for name, generation in DOWNLOADS.items():
        month = GENERATIONS[generation][1]
        # every provider row loaded, the TOTAL row counted as loaded (kept as checks)
        assert log[name] == ("nhse_ae", "NHSE", month, "loaded", PROVIDERS + 1, PROVIDERS + 1, 0), name


def test_each_file_passes_its_own_total_row_checks(loaded):
    rows = query(loaded / "j.duckdb", """
        select f.file_name, count(*), count(*) filter (where c.ok)
        from files f join published_checks c using (file_id) group by 1""")
    checks = {name: (n, ok) for name, n, ok in rows}
    for name, generation in DOWNLOADS.items():
        measures = len(GENERATIONS[generation][2])           # 12 before August 2020, 18 after
        assert checks[name] == (measures, measures), name


@pytest.mark.parametrize("month", sorted(MONTHS))
def test_booked_appointments_are_null_before_august_2020_and_loaded_after(loaded, month):
    counts = query(loaded / "j.duckdb", f"""
        select count(*), {", ".join(f"count({c})" for c in BOOKED)}
        from raw_nhse_ae where period = ?""", [first_of(month)])[0]
    rows, booked = counts[0], counts[1:]
    assert rows == PROVIDERS
    expected = PROVIDERS if month >= "2020-08" else 0
    assert booked == (expected,) * len(BOOKED)
    staged = query(loaded / "j.duckdb", """select count(*), count(attendances_booked) from stg_nhse_ae
                                           where period = ?""", [first_of(month)])[0]
    assert staged == (PROVIDERS, expected)


@pytest.mark.parametrize("month", sorted(MONTHS))
def test_england_figures_equal_the_files_total_row(loaded, month):
    name, _, wording = GENERATIONS[MONTHS[month]]
    total = published_total(HISTORIC / name, wording)
    attendances = sum(v for k, v in total.items() if k.startswith("att_"))
    over_4h = sum(v for k, v in total.items() if k.startswith("over4h_"))
    cells = {metric: (numerator, denominator) for metric, numerator, denominator in query(
        loaded / "j.duckdb", """select metric_id, numerator, denominator from metric_values
                                where area_type = 'england' and area_code = ? and period_month = ?
                                  and metric_id like 'ae_%'""", [ENGLAND, first_of(month)])}
    assert cells["ae_attendances"][0] == attendances
    assert cells["ae_within_4h_all"] == (attendances - over_4h, attendances)
    assert cells["ae_emergency_admissions"][0] == (
        total["emadm_ae_type1"] + total["emadm_ae_type2"] + total["emadm_ae_other"])
    assert cells["ae_dta_12h"][0] == total["dta_12h"]
    type1 = total["att_type1"] + total.get("att_booked_type1", 0)
    type1_over = total["over4h_type1"] + total.get("over4h_booked_type1", 0)
    assert cells["ae_within_4h_type1"] == (type1 - type1_over, type1)


def test_a_second_load_of_the_same_folder_changes_nothing(loaded, tmp_path):
    shutil.copytree(loaded / "landing", tmp_path / "landing")
    shutil.copy(loaded / "j.duckdb", tmp_path / "j.duckdb")
    settings = load_settings(landing=tmp_path / "landing", db=tmp_path / "j.duckdb", reports=tmp_path / "r")
    with pipeline.open_writer(settings) as con:
        result = pipeline.load_step(con, settings)
    assert not [r for r in result.results if r.status == "loaded"]
    assert query(tmp_path / "j.duckdb", "select count(*) from raw_nhse_ae")[0][0] == PROVIDERS * 4
