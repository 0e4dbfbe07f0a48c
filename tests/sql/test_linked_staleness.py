"""Staleness across the link: a resubmitted council or apc file makes exactly the months of the
linked metrics stale that its rows can change, in both directions.

Six months, 2025-05 to 2025-10, each with an apc file from R0A and RM3 (a person discharged on
the 12th and admitted again as an emergency on the 20th), a reablement and a carehome file from
HWB_A's council (that person, discharged on the 12th, into reablement and then a care home).

A month M of a linked metric reads, besides its own month's files:
  reablement_after_discharge_65plus  reablement rows up to 1 day after M   -> files of M+1
  carehome_after_discharge_65plus    carehome rows up to 30 days after M   -> files of M+1 (M+2
                                                                              when M+1 is short)
  readmission_after_reablement_91d   apc admissions up to 91 days after M  -> files of M+1 to M+3
so a council file for August makes July and August stale for the first two, and an apc file for
August (rows in July and August) makes May to August stale for the third.
"""
from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from flows.db import connect
from flows.ingest.loader import load_landing
from flows.models.runner import load_project, loaded_months, plan_months
from tests.sql.conftest import (
    APC_HEADER,
    CAREHOME_HEADER,
    HWB_A,
    REABLEMENT_HEADER,
    write_csv,
    write_reference,
)
from tests.sql.test_linked_metrics import build, carehome, reablement, spell

A = HWB_A
MONTHS = ["2025-05", "2025-06", "2025-07", "2025-08", "2025-09", "2025-10"]


def first(month: str) -> date:
    return date.fromisoformat(month + "-01")


def apc_rows(provider: str, month: str, method: str = "21") -> list[str]:
    key = month.replace("-", "")
    person = f"P{key}"
    return [spell(provider, f"{provider}{key}a", person, 80, A, f"{month}-05", discharged=f"{month}-12"),
            spell(provider, f"{provider}{key}b", person, 80, A, f"{month}-20", method=method)]


def write_landing(landing: Path, *, council_from: str = MONTHS[0]) -> Path:
    write_reference(landing)
    for month in MONTHS:
        key = month.replace("-", "")
        for provider in ("R0A", "RM3"):
            write_csv(landing / f"apc_{provider}_{month}.csv", APC_HEADER, *apc_rows(provider, month))
        if month < council_from:
            continue
        write_csv(landing / f"reablement_{A}_{month}.csv", REABLEMENT_HEADER,
                  reablement(f"C{key}", f"P{key}", f"{month}-12"))
        write_csv(landing / f"carehome_{A}_{month}.csv", CAREHOME_HEADER,
                  carehome(f"C{key}", f"P{key}", f"{month}-25"))
    return landing


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("linked-staleness")
    landing = write_landing(tmp / "landing")
    con = connect(tmp / "base.duckdb")
    build(con, landing, load_project())
    con.close()
    return tmp / "base.duckdb", landing


@pytest.fixture
def work(base, tmp_path):
    db, landing = base
    shutil.copy(db, tmp_path / "t.duckdb")
    shutil.copytree(landing, tmp_path / "landing")
    con = connect(tmp_path / "t.duckdb")
    yield con, tmp_path / "landing"
    con.close()


def stale_after_loading(con, landing: Path) -> dict[str, list[str]]:
    """{model: [stale months]} once what is new in the landing folder has loaded."""
    load_landing(con, landing, pseudo_key=None)
    found: dict[str, list[str]] = {}
    for plan in plan_months(con, load_project(), loaded_months(con)):
        for model in plan.models:
            found.setdefault(model, []).append(f"{plan.month:%Y-%m}")
    return found


def models_reading(dataset: str, *, linked: bool) -> set[str]:
    project = load_project()
    return {m.name for m in project.metrics if dataset in project.datasets_of(m.name)
            and ("reads_ahead_days" in m.header) == linked}


def test_the_base_links_each_month(work):
    con, _ = work
    got = con.execute("""select metric_id, min(numerator), max(numerator) from metric_values
                         where area_code = ? and metric_id in ('reablement_after_discharge_65plus',
                               'carehome_after_discharge_65plus', 'readmission_after_reablement_91d')
                         group by 1""", [A]).fetchall()
    # two discharges of the same person on the 12th (one per provider): one council row each
    assert {r[0]: r[1:] for r in got} == {"reablement_after_discharge_65plus": (2, 2),
                                          "carehome_after_discharge_65plus": (2, 2),
                                          "readmission_after_reablement_91d": (1, 1)}
    assert stale_after_loading(con, work[1]) == {}


def test_a_resubmitted_reablement_file_makes_its_month_and_the_month_before_stale(work):
    con, landing = work
    write_csv(landing / f"reablement_{A}_2025-08_resubmission.csv", REABLEMENT_HEADER,
              reablement("C202508", "P202508", "2025-08-13"),    # a day later than first sent
              reablement("X1", "Q1", "2025-08-01"))
    stale = stale_after_loading(con, landing)
    assert stale == {"reablement_at_home_91d": ["2025-08"],
                     "reablement_after_discharge_65plus": ["2025-07", "2025-08"],
                     "readmission_after_reablement_91d": ["2025-08"]}


def test_a_resubmitted_carehome_file_makes_the_discharge_months_30_days_back_stale(work):
    con, landing = work
    write_csv(landing / f"carehome_{A}_2025-08_resubmission.csv", CAREHOME_HEADER,
              carehome("C202508", "P202508", "2025-08-25", permanent="N"))
    stale = stale_after_loading(con, landing)
    assert stale == {"care_home_admissions_65plus": ["2025-08"],
                     "carehome_after_discharge_65plus": ["2025-07", "2025-08"]}


def test_a_resubmitted_apc_file_makes_reablement_months_91_days_back_stale(work):
    con, landing = work
    write_csv(landing / "apc_RM3_2025-08_resubmission.csv", APC_HEADER, *apc_rows("RM3", "2025-08", "11"))
    stale = stale_after_loading(con, landing)
    for model in models_reading("apc", linked=False):      # as before: the period and the month before
        assert stale.pop(model) == ["2025-07", "2025-08"], model
    assert stale == {"reablement_after_discharge_65plus": ["2025-07", "2025-08"],
                     "carehome_after_discharge_65plus": ["2025-07", "2025-08"],
                     "readmission_after_reablement_91d": ["2025-05", "2025-06", "2025-07", "2025-08"]}


def test_later_data_does_not_make_a_month_without_a_cohort_stale(tmp_path):
    # the council's first files are for June: May has no reablement rows, so no admission
    # after it can change May's readmission after reablement
    landing = write_landing(tmp_path / "landing", council_from="2025-06")
    con = connect(tmp_path / "t.duckdb")
    build(con, landing, load_project())
    write_csv(landing / "apc_RM3_2025-08_resubmission.csv", APC_HEADER, *apc_rows("RM3", "2025-08", "11"))
    stale = stale_after_loading(con, landing)
    con.close()
    assert stale["readmission_after_reablement_91d"] == ["2025-06", "2025-07", "2025-08"]


def test_the_rebuilt_months_use_the_new_rows(work):
    con, landing = work
    write_csv(landing / "apc_RM3_2025-08_resubmission.csv", APC_HEADER, *apc_rows("RM3", "2025-08", "11"))
    build(con, landing, load_project())
    assert stale_after_loading(con, landing) == {}
    got = con.execute("""select numerator, denominator from metric_values where area_code = ?
                         and metric_id = 'readmission_after_reablement_91d' and period_month = ?""",
                      [A, first("2025-08")]).fetchone()
    assert got == (1, 1)          # R0A's August readmission still follows; RM3's is now elective


@pytest.mark.parametrize(("month", "dataset", "days", "reached"), [
    ("2025-01", "carehome", 30, ["2025-02", "2025-03"]),          # 31 Jan + 30 days = 2 March
    ("2025-02", "carehome", 30, ["2025-03"]),                     # 28 Feb + 30 days = 30 March
    ("2025-01", "reablement", 1, ["2025-02"]),
    ("2025-05", "apc", 91, ["2025-06", "2025-07", "2025-08"]),    # 31 May + 91 days = 30 August
    ("2025-05", "apc", 0, []),
])
def test_the_later_months_a_metric_reads_follow_the_calendar(month, dataset, days, reached):
    from flows.models.runner import InputIndex

    index = InputIndex.__new__(InputIndex)      # no database: one file per dataset and month
    months = [date(2025, m, 1) for m in range(1, 13)]
    index.by_month = {m: [(i, f"{d}_{m:%Y-%m}", b"", d) for i, d in enumerate(("apc", "carehome", "reablement"))]
                      for m in months}
    got = [name for _, name, _ in index.files_ahead(first(month), dataset, days)]
    assert got == [f"{dataset}_{m}" for m in reached]
