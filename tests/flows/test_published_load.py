"""NHS England's published A&E files, dropped into the landing folder under download names, load
with the same guarantees as extracts and give the provider-level A&E metrics.

Oracles: NHS England's own TOTAL row in every file (checked at load) and the England figures in
tests/data/nhse-ae-monthly-2025-26/SOURCE.md.
"""
from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows import pipeline
from flows.settings import load_settings
from tests.conftest import TEST_DATA, run_contract_check, run_shared_contract_check, write_csv
from tests.unit.test_published import ENGLAND as SOURCE_ENGLAND

AE_DIR = TEST_DATA / "nhse-ae-monthly-2025-26"
ONS_2020 = TEST_DATA / "ons-mye-la-age-2019-2020" / "ONS2020_PopnByAgeYearEstimate.csv"
DISCHARGE_DIR = TEST_DATA / "healthyr-nhse-discharge"
MONTHS = sorted(SOURCE_ENGLAND)

ICB, MANCHESTER, TRAFFORD, ENGLAND = "QOP", "E08000003", "E08000009", "E92000001"
ORGS = ("ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
        f"{ICB},ICB,NHS Greater Manchester Integrated Care Board,",
        f"{MANCHESTER},HWB,Manchester,{ICB}",
        f"{TRAFFORD},HWB,Trafford,{ICB}",
        f"R0A,PROVIDER,Manchester University NHS Foundation Trust,{ICB}",
        f"RM3,PROVIDER,Northern Care Alliance NHS Foundation Trust,{ICB}")
CONTRACT_METRICS = 15        # section 3's twelve and section 3a's three linked metrics


def download_name(month: str) -> str:
    """Browser download names, deliberately not in month order."""
    return f"download ({(MONTHS.index(month) * 5) % 12 + 1}).csv"


def write_reference(landing: Path) -> None:
    write_csv(landing / "orgs_all.csv", *ORGS)
    write_csv(landing / "population_ONS_2025.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              *(f"{hwb},2025,{sex},{age},100" for hwb in (MANCHESTER, TRAFFORD)
                for sex in (1, 2) for age in (30, 70)))


def run(root: Path, *, build: bool = True) -> pipeline.RunRecord:
    """Load what is new and rebuild the stale months, as a scheduled run does (no reports)."""
    settings = load_settings(landing=root / "landing", db=root / "j.duckdb", reports=root / "r")
    record = pipeline.RunRecord("test", {})
    with pipeline.open_writer(settings) as con:
        record.load = pipeline.load_step(con, settings)
        record.plans = pipeline.plan_step(con, [])
        if build:
            record.build = pipeline.build_step(con, record.plans, record.run_id)
    return record


def query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    """Twelve months of A&E files under download names, an orgs file and a population file."""
    root = tmp_path_factory.mktemp("published")
    landing = root / "landing"
    write_reference(landing)
    for month in MONTHS:
        shutil.copy(AE_DIR / f"{month}.csv", landing / download_name(month))
    run(root)
    return root


@pytest.fixture
def copy_of_loaded(loaded, tmp_path) -> Path:
    """A private copy of the loaded database and landing folder, for tests that add files."""
    shutil.copytree(loaded / "landing", tmp_path / "landing")
    shutil.copy(loaded / "j.duckdb", tmp_path / "j.duckdb")
    return tmp_path


def england(db: Path, metric_id: str, month: str) -> tuple:
    return query(db, """select numerator, denominator, value, status from metric_values
                        where area_type = 'england' and area_code = ? and metric_id = ?
                          and period_month = ?""", [ENGLAND, metric_id, date.fromisoformat(month + "-01")])[0]


def test_england_march_2026_matches_nhs_england(loaded):
    db = loaded / "j.duckdb"
    assert england(db, "ae_attendances", "2026-03")[:3] == (2432272, None, 2432272)
    numerator, denominator, value, _ = england(db, "ae_within_4h_all", "2026-03")
    assert (numerator, denominator) == (2432272 - 556711, 2432272)
    assert round(value, 2) == 77.11


@pytest.mark.parametrize("month", MONTHS)
def test_every_month_matches_the_published_england_figures(loaded, month):
    attendances, over_4h, pct_all, pct_type1, via_ae, _all_emergency, dta_12h = SOURCE_ENGLAND[month]
    db = loaded / "j.duckdb"
    assert england(db, "ae_attendances", month)[0] == attendances
    assert england(db, "ae_within_4h_all", month)[:2] == (attendances - over_4h, attendances)
    assert round(england(db, "ae_within_4h_all", month)[2], 2) == pct_all
    assert round(england(db, "ae_within_4h_type1", month)[2], 2) == pct_type1
    assert england(db, "ae_emergency_admissions", month)[0] == via_ae
    assert england(db, "ae_dta_12h", month)[0] == dta_12h


def test_every_months_published_checks_pass(loaded):
    db = loaded / "j.duckdb"
    rows = query(db, """select f.period, count(*), count(*) filter (where c.ok), count(distinct f.file_id)
                        from files f join published_checks c using (file_id)
                        where f.dataset = 'nhse_ae' and f.status = 'loaded' group by 1 order by 1""")
    assert [r[0] for r in rows] == MONTHS
    assert all(checks == 18 and ok == 18 and files == 1 for _, checks, ok, files in rows)
    months = query(db, """select distinct strftime(m.month, '%Y-%m') from file_months m
                          join files f using (file_id) where f.dataset = 'nhse_ae' order by 1""")
    assert [m for (m,) in months] == MONTHS


def test_load_log_accounts_for_every_row(loaded):
    db = loaded / "j.duckdb"
    log = query(db, """select file_name, dataset, org_code, period, status, rows_in, rows_loaded,
                              rows_quarantined from load_log""")
    assert all(rows_in == loaded_ + quarantined for *_, rows_in, loaded_, quarantined in log)
    ae = {name: row for name, *row in log if row[0] == "nhse_ae"}
    assert len(ae) == 12
    for month in MONTHS:
        dataset, org, period, status, rows_in, rows_loaded, quarantined = ae[download_name(month)]
        providers = sum(1 for _ in (AE_DIR / f"{month}.csv").open()) - 2     # header, TOTAL
        assert (dataset, org, period, status) == ("nhse_ae", "NHSE", month, "loaded")
        # every provider row loaded, and the TOTAL row counted as loaded (kept as checks)
        assert (rows_in, rows_loaded, quarantined) == (providers + 1, providers + 1, 0)
        assert query(db, """select count(*) from raw_nhse_ae r join files f using (file_id)
                            where f.file_name = ?""", [download_name(month)])[0][0] == providers


def test_provider_rows_roll_up_to_our_icb_and_england(loaded):
    db = loaded / "j.duckdb"
    first = date(2026, 3, 1)
    cells = dict(query(db, """select area_type || ':' || area_code, numerator from metric_values
                              where metric_id = 'ae_attendances' and period_month = ?""", [first]))
    providers = {k: v for k, v in cells.items() if k.startswith("provider:")}
    assert len(providers) == 199
    assert cells[f"icb:{ICB}"] == providers["provider:R0A"] + providers["provider:RM3"]
    assert cells[f"england:{ENGLAND}"] == sum(providers.values())
    # ICBs only from orgs: the file's Parent Org (an NHS England region) is no ICB of ours
    assert {k for k in cells if k.startswith("icb:")} == {f"icb:{ICB}"}
    assert not query(db, "select count(*) from metric_values where area_type = 'hwb' "
                         "and metric_id like 'ae_%'")[0][0]


def test_published_months_get_every_contract_metric_cell(loaded):
    db = loaded / "j.duckdb"
    rows = query(db, """select period_month, count(distinct metric_id), count(*),
                               count(*) filter (where status = 'provisional')
                        from metric_values
                        where area_type in ('hwb', 'icb', 'england') and metric_id not like 'ae_%'
                        group by 1 order by 1""")
    assert len(rows) == 12
    # 15 contract metrics x (2 HWBs + 1 ICB + England), zeros: no apc or council extract has
    # ever arrived, so none is expected (the contract: expected from the first delivery on)
    # and these months are not held provisional for them
    assert all(n == CONTRACT_METRICS and cells == n * 4 for _, n, cells, _ in rows)


def test_the_database_passes_the_contract_check(loaded):
    check = run_contract_check(loaded / "j.duckdb")
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_workspace_contract_checker_agrees_where_there_is_one(loaded):
    check = run_shared_contract_check(loaded / "j.duckdb")
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_second_load_of_the_same_folder_changes_nothing(copy_of_loaded):
    db = copy_of_loaded / "j.duckdb"
    tables = ("files", "quarantine_rows", "raw_nhse_ae", "published_checks", "metric_cells")
    before = {t: query(db, f"select * exclude (loaded_at) from {t}" if t == "files"
                       else f"select * from {t}") for t in tables}
    again = run(copy_of_loaded)
    assert again.load.results == [] and again.plans == [] and again.build.models_run == 0
    after = {t: query(db, f"select * exclude (loaded_at) from {t}" if t == "files"
                      else f"select * from {t}") for t in tables}
    assert after == before


def test_the_same_bytes_under_another_name_is_a_duplicate(copy_of_loaded):
    shutil.copy(AE_DIR / "2025-07.csv", copy_of_loaded / "landing" / "AE-July-2025 (copy).csv")
    result = run(copy_of_loaded, build=False)
    assert [(r.file_name, r.status, r.rows_in, r.rows_loaded, r.rows_quarantined)
            for r in result.load.results] == [("AE-July-2025 (copy).csv", "duplicate", 0, 0, 0)]
    assert result.plans == []


def test_a_corrupted_total_blocks_its_month_and_keeps_the_previous_figures(copy_of_loaded):
    db = copy_of_loaded / "j.duckdb"
    before = query(db, "select * from metric_cells where period_month = '2026-03-01' order by all")
    lines = (AE_DIR / "2026-03.csv").read_text().splitlines(keepends=True)
    total = next(i for i, line in enumerate(lines) if line.startswith("TOTAL,"))
    lines[total] = lines[total].replace(",1451010,", ",1451011,", 1)      # Type 1 attendances
    (copy_of_loaded / "landing" / "MSitAE March 2026 revised.csv").write_text("".join(lines))

    [failure] = run(copy_of_loaded).build.failed      # the month is rolled back, not the run
    assert failure.audits == ["published_totals_match"]
    assert failure.reason.startswith("audit published_totals_match failed for 2026-03")

    # the revised file replaced March's rows, but the failed month kept its previous figures
    log = dict(query(db, "select file_name, status from load_log where period = '2026-03'"))
    assert log == {download_name("2026-03"): "superseded", "MSitAE March 2026 revised.csv": "loaded"}
    failed = query(db, """select c.column_name, c.published, c.computed from published_checks c
                          join files f using (file_id) where f.status = 'loaded' and not c.ok""")
    assert failed == [("att_type1", 1451011, 1451010)]
    assert query(db, "select * from metric_cells where period_month = '2026-03-01' order by all") == before


def test_a_newer_file_for_the_same_month_supersedes_the_older(copy_of_loaded):
    db = copy_of_loaded / "j.duckdb"
    lines = (AE_DIR / "2025-04.csv").read_text().splitlines(keepends=True)
    dropped = lines.pop(1)                                   # a provider left out of the revision
    org = dropped.split(",")[1]
    values = [int(v) for v in dropped.strip().split(",")[4:]]
    total = next(i for i, line in enumerate(lines) if line.startswith("TOTAL,"))
    parts = lines[total].strip().split(",")
    lines[total] = ",".join(parts[:4] + [str(int(t) - v) for t, v in zip(parts[4:], values)]) + "\n"
    (copy_of_loaded / "landing" / "ae april revised.csv").write_text("".join(lines))

    run(copy_of_loaded)
    statuses = dict(query(db, "select file_name, status from load_log where period = '2025-04'"))
    assert statuses == {download_name("2025-04"): "superseded", "ae april revised.csv": "loaded"}
    assert query(db, """select count(*) from raw_nhse_ae where period = '2025-04-01'""")[0][0] == \
        sum(1 for _ in (AE_DIR / "2025-04.csv").open()) - 3
    assert england(db, "ae_attendances", "2025-04")[0] == SOURCE_ENGLAND["2025-04"][0] - sum(values[:6])
    assert not query(db, "select * from metric_values where area_code = ? and metric_id = 'ae_attendances' "
                         "and period_month = '2025-04-01'", [org])


def test_an_unreadable_published_file_is_rejected_with_its_rows_quarantined(tmp_path):
    write_reference(tmp_path / "landing")
    header = (AE_DIR / "2026-03.csv").read_text().splitlines()[0]
    write_csv(tmp_path / "landing" / "export.csv", header,
              "no month here,RXX,REGION,SOME TRUST" + ",1" * 18,
              "TOTAL,TOTAL,TOTAL,TOTAL" + ",1" * 18)
    result = run(tmp_path, build=False)
    rejected = [r for r in result.load.results if r.file_name == "export.csv"][0]
    assert (rejected.status, rejected.rows_in, rejected.rows_loaded, rejected.rows_quarantined) == \
        ("rejected", 2, 0, 2)
    assert rejected.reason.startswith("no_period:")
    assert query(tmp_path / "j.duckdb", "select dataset, line_number, rule from files join quarantine_rows "
                 "using (file_id) where files.file_name = 'export.csv' order by 2") == \
        [("nhse_ae", 1, "no_period"), ("nhse_ae", 2, "no_period")]


def test_ons_population_fills_in_only_where_no_population_file_does(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "orgs_all.csv", *ORGS)
    # the contract population file covers Manchester for 2020 only; Trafford comes from ONS
    write_csv(landing / "population_ONS_2020.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              f"{MANCHESTER},2020,1,40,1000", f"{MANCHESTER},2020,2,70,500")
    shutil.copy(ONS_2020, landing / ONS_2020.name)           # the name carries the mid-year
    shutil.copy(AE_DIR / "2025-04.csv", landing / "download.csv")
    run(tmp_path)
    db = tmp_path / "j.duckdb"
    population = dict(query(db, """select area_code, sum(population) from stg_population
                                   where year = 2020 and area_code in (?, ?) group by 1""",
                            [MANCHESTER, TRAFFORD]))
    assert population == {MANCHESTER: 1500, TRAFFORD: 237579}   # SOURCE.md: Trafford mid-2020
    cells = dict(query(db, """select area_code, denominator from metric_values
                              where metric_id = 'emergency_admissions' and period_month = '2025-04-01'"""))
    assert cells[MANCHESTER] == 1500 and cells[TRAFFORD] == 237579
    assert cells[ENGLAND] == 1500 + 237579
    assert query(db, "select count(*) from published_checks where not ok")[0][0] == 0


def test_discharge_sitrep_files_load_side_by_side_and_give_the_daily_average(tmp_path):
    landing = tmp_path / "landing"
    write_reference(landing)
    for name in ("england_trust_criteria_to_reside", "england_trust_discharged_patients"):
        shutil.copy(DISCHARGE_DIR / f"{name}.csv.gz", landing / f"{name[14:]}.csv.gz")
    shutil.copy(AE_DIR / "2025-08.csv", landing / "download.csv")   # makes 2025-08 a loaded month
    run(tmp_path)
    db = tmp_path / "j.duckdb"
    log = query(db, """select file_name, period, status, rows_in, rows_loaded, rows_quarantined
                       from load_log where dataset = 'nhse_discharge' order by 1""")
    # 41 months each, so no period; two layouts, so neither supersedes the other
    assert log == [("criteria_to_reside.csv.gz", None, "loaded", 149482, 149239, 243),
                   ("discharged_patients.csv.gz", None, "loaded", 149482, 149239, 243)]
    assert query(db, """select count(distinct month) from file_months join files using (file_id)
                        where dataset = 'nhse_discharge'""")[0][0] == 41
    numerator, denominator, value, _ = england(db, "nctr_daily_average", "2025-08")
    assert denominator == 31 and round(value, 1) == 22129.5        # SOURCE.md: 2025-08 22,129.5
    check = run_contract_check(db)
    assert check.returncode == 0, check.stdout + check.stderr
