"""The linked metrics of extracts section 3a on hand-made extracts, one rule per test.

Hospital spells and council rows carry the same PSEUDO_ID (or NHS number) for the same person,
so they join. conftest's two HWBs in one ICB; HWB_A's council sends the reablement and carehome
files. Only the three linked metrics are built (with every upstream model and audit), which
keeps each test to a second or so. Row comments say why each row counts or not.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.ingest.identifiers import nhs_number_valid
from flows.ingest.loader import load_landing
from flows.models.runner import Project, build_months, load_project, loaded_months, plan_months, write_catalog
from tests.sql.conftest import (
    APC_HEADER,
    CAREHOME_HEADER,
    ENGLAND,
    HWB_A,
    HWB_B,
    ICB,
    REABLEMENT_HEADER,
    UNKNOWN,
    assert_cell,
    cells,
    statuses,
    write_csv,
)

A, B, X = HWB_A, HWB_B, UNKNOWN
LINKED = ("reablement_after_discharge_65plus", "carehome_after_discharge_65plus",
          "readmission_after_reablement_91d")
KEY = "linked-metrics-test-key"


def linked_project() -> Project:
    """Every model except the metrics that are not linked: the build the tests need."""
    project = load_project()
    models = {n: m for n, m in project.models.items() if m.kind != "metric" or n in LINKED}
    return Project(models, project.audits, project.sql_dir)


def build(con, landing: Path, project: Project | None = None):
    project = project or linked_project()
    summary = load_landing(con, landing, pseudo_key=KEY)
    write_catalog(con, project)
    build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="t")
    return summary


def spell(provider: str, spno: str, person: str, age: int, area: str, admitted: str, method: str = "21",
          discharged: str = "", dismeth: str = "1", disdest: str = "19") -> str:
    if not discharged:
        dismeth = disdest = ""
    return (f"{provider},{spno},{person},{age},1,{area},{admitted},{method},{discharged},{dismeth},"
            f"{disdest},,R69X,,")


def reablement(client: str, person: str, discharged: str, *, age: int = 80, status: str = "HOME",
               la: str = A) -> str:
    return f"{la},{client},{person},{age},{discharged},{discharged},{status}"


def carehome(client: str, person: str, admitted: str, *, permanent: str = "Y", age: int = 85,
             setting: str = "RESIDENTIAL", funding: str = "LA", la: str = A) -> str:
    return f"{la},{client},{person},{age},{admitted},{setting},{permanent},{funding}"


def first(month: str) -> date:
    return date.fromisoformat(month + "-01")


# ------------------------------------------------------------------ reablement after discharge


@pytest.fixture
def reablement_landing(landing):
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              spell("R0A", "S1", "P1", 70, A, "2025-10-01", discharged="2025-10-10"),  # same day: counts
              spell("R0A", "S2", "P2", 70, A, "2025-10-01", discharged="2025-10-10"),  # day after: counts
              spell("R0A", "S3", "P3", 70, A, "2025-10-01", discharged="2025-10-10"),  # two days: misses
              spell("R0A", "S4", "P4", 70, A, "2025-10-01", discharged="2025-10-10"),  # day before: misses
              spell("R0A", "S5", "P5", 70, A, "2025-10-01", discharged="2025-10-10", dismeth="4",
                    disdest="79"),                                                   # died: in neither
              spell("R0A", "S6", "P6", 64, A, "2025-10-01", discharged="2025-10-10"),  # aged 64: in neither
              spell("R0A", "S7", "", 70, A, "2025-10-01", discharged="2025-10-10"),    # no person id
              spell("R0A", "S8", "P8", 7001, A, "2025-10-01", discharged="2025-10-10"),  # age 0: in neither
              spell("R0A", "S9", "P9", 65, A, "2025-10-01", discharged="2025-10-31"),  # row in Nov file
              spell("R0A", "S10", "P10", 90, A, "2025-10-01", discharged="2025-10-20"),  # two discharges,
              spell("R0A", "S11", "P10", 90, A, "2025-10-20", discharged="2025-10-21"),  # one row: both
              spell("R0A", "S12", "P12", 75, A, "2025-10-01", discharged="2025-10-15"),  # council's own id
              spell("R0A", "S13", "P13", 75, B, "2025-10-01", discharged="2025-10-15"),  # lives in B
              spell("R0A", "S14", "P14", 75, X, "2025-10-01", discharged="2025-10-15"),  # residence unknown
              spell("R0A", "S15", "P15", 75, A, "2025-10-01"))                          # still in hospital
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER,
              spell("R0A", "S16", "P16", 75, A, "2025-11-02", discharged="2025-11-03"))
    write_csv(landing / f"reablement_{A}_2025-10.csv", REABLEMENT_HEADER,
              reablement("C1", "P1", "2025-10-10", age=60, status=""),  # any AGE, no status yet
              reablement("C2", "P2", "2025-10-11", status="DIED"),
              reablement("C3", "P3", "2025-10-12"),
              reablement("C4", "P4", "2025-10-09"),
              reablement("C5", "P5", "2025-10-10"),
              reablement("C6", "P6", "2025-10-10"),
              reablement("C8", "P8", "2025-10-10"),
              reablement("C10", "P10", "2025-10-21"),
              reablement("C12", "LA-P12", "2025-10-15"),         # its own pseudo id: links to nothing
              reablement("C13", "P13", "2025-10-16", la=A),      # any LA_CODE: counts in B
              reablement("C14", "P14", "2025-10-15"),
              reablement("C15", "P15", "2025-10-15"))
    write_csv(landing / f"reablement_{A}_2025-11.csv", REABLEMENT_HEADER,
              reablement("C9", "P9", "2025-11-01", status=""))   # day after 31 Oct, in November's file
    return landing


def test_reablement_after_discharge_same_day_or_day_after(con, reablement_landing):
    build(con, reablement_landing)
    oct_ = cells(con, "reablement_after_discharge_65plus", "2025-10")
    # A: S1 S2 S3 S4 S9 S10 S11 S12 in the denominator; S1 S2 S9 S10 S11 followed by reablement
    assert_cell(oct_[A], 5, 8, 62.5)
    assert_cell(oct_[B], 1, 1, 100.0)                   # S13, reablement from A's council
    assert_cell(oct_[ICB], 6, 9, 600 / 9)
    assert_cell(oct_[ENGLAND], 6, 9, 600 / 9)
    nov = cells(con, "reablement_after_discharge_65plus", "2025-11")
    assert_cell(nov[A], 0, 1, 0.0)                      # S16, nothing follows
    assert_cell(nov[B], 0, 0, None)


# ------------------------------------------------------------------ care home after discharge


@pytest.fixture
def carehome_landing(landing):
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              spell("R0A", "S1", "P1", 70, A, "2025-10-01", discharged="2025-10-01"),  # day 0: counts
              spell("R0A", "S2", "P2", 70, A, "2025-10-01", discharged="2025-10-01"),  # day 30: counts
              spell("R0A", "S3", "P3", 70, A, "2025-10-01", discharged="2025-10-01"),  # day 31: misses
              spell("R0A", "S4", "P4", 70, A, "2025-10-01", discharged="2025-10-10"),  # PERMANENT N
              spell("R0A", "S5", "P5", 70, A, "2025-10-01", discharged="2025-10-10"),  # admitted before
              spell("R0A", "S6", "P6", 70, B, "2025-10-01", discharged="2025-10-31"),  # Nov file, any LA
              spell("R0A", "S7", "P7", 70, A, "2025-10-01", discharged="2025-10-10", dismeth="4",
                    disdest="79"),                                                   # died
              spell("R0A", "S8", "P8", 70, A, "2025-10-01", discharged="2025-10-05"),  # two discharges,
              spell("R0A", "S9", "P8", 70, A, "2025-10-06", discharged="2025-10-08"),  # one admission
              spell("R0A", "S10", "P10", 70, A, "2025-10-01", discharged="2025-10-05"),  # row has no id
              spell("R0A", "S11", "P11", 60, A, "2025-10-01", discharged="2025-10-05"))  # aged 60
    write_csv(landing / "apc_R0A_2025-11.csv", APC_HEADER,
              spell("R0A", "S12", "P12", 80, A, "2025-11-01", discharged="2025-11-02"))
    write_csv(landing / f"carehome_{A}_2025-10.csv", CAREHOME_HEADER,
              carehome("C1", "P1", "2025-10-01"),
              carehome("C2", "P2", "2025-10-31", age=50, setting="NURSING", funding="SELF"),
              carehome("C4", "P4", "2025-10-12", permanent="N"),
              carehome("C5", "P5", "2025-10-09"),
              carehome("C7", "P7", "2025-10-10"),
              carehome("C8", "P8", "2025-10-09"),
              carehome("C10", "", "2025-10-06"),
              carehome("C11", "P11", "2025-10-06"))
    write_csv(landing / f"carehome_{A}_2025-11.csv", CAREHOME_HEADER,
              carehome("C3", "P3", "2025-11-01"),
              carehome("C6", "P6", "2025-11-30", funding="NHS"),
              carehome("C12", "P12", "2025-11-02", permanent="N"))
    return landing


def test_carehome_after_discharge_0_to_30_days_permanent_only(con, carehome_landing):
    build(con, carehome_landing)
    oct_ = cells(con, "carehome_after_discharge_65plus", "2025-10")
    # A: S1 S2 S3 S4 S5 S8 S9 S10; S1 (day 0), S2 (day 30), S8 and S9 (one admission) follow
    assert_cell(oct_[A], 4, 8, 50.0)
    assert_cell(oct_[B], 1, 1, 100.0)                   # S6, 30 days later, NHS funded
    assert_cell(oct_[ENGLAND], 5, 9, 500 / 9)
    assert_cell(cells(con, "carehome_after_discharge_65plus", "2025-11")[A], 0, 1, 0.0)  # respite


def test_a_resubmitted_council_file_replaces_its_rows(con, carehome_landing):
    build(con, carehome_landing)
    # the council corrects October: C4 was a permanent placement, C1's row goes
    write_csv(carehome_landing / f"carehome_{A}_2025-10_corrected.csv", CAREHOME_HEADER,
              carehome("C2", "P2", "2025-10-31"),
              carehome("C4", "P4", "2025-10-12"),
              carehome("C8", "P8", "2025-10-09"))
    build(con, carehome_landing)
    oct_ = cells(con, "carehome_after_discharge_65plus", "2025-10")
    assert_cell(oct_[A], 4, 8, 50.0)                    # S2 S4 S8 S9; S1 no longer
    assert con.execute("select count(*) from stg_carehome").fetchone() == (6,)


def test_a_later_councils_row_for_the_same_client_and_date_replaces_the_earlier(con, carehome_landing):
    # November's file re-sends C1's October admission as respite: the later file wins
    write_csv(carehome_landing / f"carehome_{A}_2025-11.csv", CAREHOME_HEADER,
              carehome("C3", "P3", "2025-11-01"),
              carehome("C6", "P6", "2025-11-30", funding="NHS"),
              carehome("C12", "P12", "2025-11-02", permanent="N"),
              carehome("C1", "P1", "2025-10-01", permanent="N"))
    build(con, carehome_landing)
    assert_cell(cells(con, "carehome_after_discharge_65plus", "2025-10")[A], 3, 8, 37.5)


# ------------------------------------------------------------------ readmission after reablement


@pytest.fixture
def readmission_landing(landing):
    write_csv(landing / f"reablement_{A}_2025-10.csv", REABLEMENT_HEADER,
              reablement("C1", "P1", "2025-10-05"),              # emergency admission day 0: no
              reablement("C2", "P2", "2025-10-05"),              # day 1: counts
              reablement("C3", "P3", "2025-10-05", status=""),   # day 91: counts, no status yet
              reablement("C4", "P4", "2025-10-05"),              # day 92: no
              reablement("C5", "P5", "2025-10-05"),              # elective admission: no
              reablement("C6", "P6", "2025-10-05", age=64),      # aged 64: in neither
              reablement("C7", "", "2025-10-05"),                # no person id: in neither
              reablement("C8a", "P8", "2025-10-05"),             # one person under two
              reablement("C8b", "P8", "2025-10-05"),             # client ids: two rows, both count
              reablement("C9", "LA-P9", "2025-10-05"),           # council's own id: no link
              reablement("C10", "P10", "2025-10-31", status="DIED"),  # admitted on Nov 1, any residence
              reablement("C11", "P11", "2025-10-20"))            # two admissions: counts once
    write_csv(landing / f"reablement_{B}_2025-10.csv", REABLEMENT_HEADER,
              reablement("K1", "P21", "2025-10-15", la=B),       # B: readmitted
              reablement("K2", "P22", "2025-10-15", la=B))       # B: not
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              spell("R0A", "E1", "P1", 80, A, "2025-10-05"),
              spell("R0A", "E2", "P2", 80, A, "2025-10-06"),
              spell("R0A", "E5", "P5", 80, A, "2025-10-15", method="11"),
              spell("R0A", "E6", "P6", 80, A, "2025-10-15"),
              spell("R0A", "E8", "P8", 80, A, "2025-10-10"),
              spell("R0A", "E9", "P9", 80, A, "2025-10-10"),
              spell("R0A", "E11", "P11", 80, A, "2025-10-21"),
              spell("R0A", "E12", "P11", 80, A, "2025-10-25", method="2B"),
              spell("R0A", "E21", "P21", 80, B, "2025-10-30"))
    write_csv(landing / "apc_RM3_2025-11.csv", APC_HEADER,
              spell("RM3", "E10", "P10", 40, X, "2025-11-01", method="2A"))
    write_csv(landing / "apc_RM3_2025-12.csv", APC_HEADER,
              spell("RM3", "E10", "P10", 40, X, "2025-11-01", method="2A"),  # still in
              spell("RM3", "E13", "P13", 80, A, "2025-12-01", method="11"))
    write_csv(landing / "apc_RM3_2026-01.csv", APC_HEADER,
              spell("RM3", "E10", "P10", 40, X, "2025-11-01", method="2A"),
              spell("RM3", "E3", "P3", 80, A, "2026-01-04"),
              spell("RM3", "E4", "P4", 80, A, "2026-01-05"))
    return landing


def test_readmission_after_reablement_day_1_to_91(con, readmission_landing):
    build(con, readmission_landing)
    oct_ = cells(con, "readmission_after_reablement_91d", "2025-10")
    # A rows: C1 C2 C3 C4 C5 C8a C8b C9 C10 C11; readmitted: C2 C3 C8a C8b C10 C11
    assert_cell(oct_[A], 6, 10, 60.0)
    assert_cell(oct_[B], 1, 2, 50.0)
    assert_cell(oct_[ICB], 7, 12, 700 / 12)
    assert_cell(oct_[ENGLAND], 7, 12, 700 / 12)
    assert_cell(cells(con, "readmission_after_reablement_91d", "2025-11")[A], 0, 0, None)


def test_linked_months_are_provisional_by_window_not_by_awaited_status(con, readmission_landing):
    build(con, readmission_landing)
    # latest period January 2026: October's 91 days have passed (30 Jan); C3's empty status
    # does not hold the linked metric back. Councils sent October only, so November to January
    # miss their files.
    assert set(statuses(con, "readmission_after_reablement_91d", "2025-10").values()) == {"final"}
    assert set(statuses(con, "readmission_after_reablement_91d", "2025-11").values()) == {"provisional"}
    # carehome: 30-day window; no carehome data at all, apc missing from R0A from November on
    assert set(statuses(con, "carehome_after_discharge_65plus", "2025-10").values()) == {"final"}
    assert set(statuses(con, "carehome_after_discharge_65plus", "2025-12").values()) == {"provisional"}


def test_a_missing_council_file_holds_back_only_its_own_area(con, landing):
    for month in ("2025-10", "2025-11", "2025-12"):
        write_csv(landing / f"apc_R0A_{month}.csv", APC_HEADER,
                  spell("R0A", f"S{month}", f"P{month}", 80, A, f"{month}-01", discharged=f"{month}-02"))
        write_csv(landing / f"carehome_{A}_{month}.csv", CAREHOME_HEADER,
                  carehome(f"C{month}", f"P{month}", f"{month}-10"))
    for month in ("2025-10", "2025-12"):   # B's council misses November
        write_csv(landing / f"carehome_{B}_{month}.csv", CAREHOME_HEADER,
                  carehome(f"K{month}", f"Q{month}", f"{month}-10", la=B))
    build(con, landing)
    nov = statuses(con, "carehome_after_discharge_65plus", "2025-11")
    assert nov == {A: "final", B: "provisional", ICB: "provisional", ENGLAND: "provisional"}
    assert set(statuses(con, "carehome_after_discharge_65plus", "2025-10").values()) == {"final"}
    # the 91-day metrics: December's latest period is too soon for any of the three months
    assert set(statuses(con, "reablement_after_discharge_65plus", "2025-10").values()) == {"provisional"}
    assert_cell(cells(con, "carehome_after_discharge_65plus", "2025-11")[A], 1, 1, 100.0)


# ------------------------------------------------------------------ people and ids


def nhs_number(stem: int) -> str:
    """A valid (modulus 11) NHS number from a nine-digit stem, for the synthetic people here."""
    for last in range(10):
        number = f"{stem:09d}{last}"
        if nhs_number_valid(number):
            return number
    return nhs_number(stem + 1)


def test_nhs_numbers_link_and_pseudo_ids_link_only_to_the_same_id(con, landing):
    one, two = nhs_number(943476591), nhs_number(401023213)
    header = "PROCODE,PROVSPNO,NEWNHSNO,PSEUDO_ID,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,DISMETH,DISDEST,DIAG_4_01"
    write_csv(landing / "apc_R0A_2025-10.csv", header,
              f"R0A,N1,{one},,80,1,{A},2025-10-01,21,2025-10-05,1,19,R69X",    # NHS number both sides
              f"R0A,N2,,SHARED-7,80,1,{A},2025-10-01,21,2025-10-05,1,19,R69X",  # same PSEUDO_ID both
              f"R0A,N3,{two},,80,1,{A},2025-10-01,21,2025-10-05,1,19,R69X",    # council sends its own id
              f"R0A,N4,1234567890,,80,1,{A},2025-10-01,21,2025-10-05,1,19,R69X")  # invalid: no person id
    council = "LA_CODE,CLIENT_ID,NEWNHSNO,PSEUDO_ID,AGE,HOSP_DISCHARGE_DATE,SERVICE_START_DATE,STATUS_91D"
    write_csv(landing / f"reablement_{A}_2025-10.csv", council,
              f"{A},C1,{one[:3]} {one[3:6]} {one[6:]},,80,2025-10-05,2025-10-06,",  # spaced: the same
              f"{A},C2,,SHARED-7,80,2025-10-06,2025-10-06,",
              f"{A},C3,,LA-0003,80,2025-10-05,2025-10-06,",
              f"{A},C4,1234567890,,80,2025-10-05,2025-10-06,")
    build(con, landing)
    # N1 and N2 link; N3 does not; N4 has no person id and is in no denominator
    assert_cell(cells(con, "reablement_after_discharge_65plus", "2025-10")[A], 2, 3, 200 / 3)
    # readmission: C4 has no person id; none of C1-C3 is readmitted
    assert_cell(cells(con, "readmission_after_reablement_91d", "2025-10")[A], 0, 3, 0.0)


def test_every_linked_cell_is_present_with_plan_values(con, reablement_landing):
    write_csv(reablement_landing / f"plan_{A}_2025-26.csv", "AREA_CODE,METRIC_ID,PERIOD,PLAN_VALUE",
              f"{A},reablement_after_discharge_65plus,2025-10,55.5",
              f"{ICB},carehome_after_discharge_65plus,2025-11,4.0")
    build(con, reablement_landing)
    got = con.execute("""select metric_id, count(*) from metric_values
                         where metric_id in (select unnest(?::varchar[])) group by 1""",
                      [list(LINKED)]).fetchall()
    assert dict(got) == {m: 8 for m in LINKED}           # 2 months x (2 HWBs + ICB + England)
    plans = con.execute("""select metric_id, strftime(period_month, '%Y-%m'), area_code, plan_value
                           from metric_values where plan_value is not null order by 1""").fetchall()
    assert plans == [("carehome_after_discharge_65plus", "2025-11", ICB, 4.0),
                     ("reablement_after_discharge_65plus", "2025-10", A, 55.5)]


def test_headers_state_window_direction_and_analogue():
    project = load_project()
    headers = {n: project.models[n].header for n in LINKED}
    assert [headers[n]["follow_up_days"] for n in LINKED] == ["91", "30", "91"]
    assert [headers[n]["higher_is_better"] for n in LINKED] == ["true", "false", "false"]
    assert "2B(2)" in headers["reablement_after_discharge_65plus"]["official_id"]
    assert all(headers[n]["unit"] == "percent" for n in LINKED)
    assert {n: project.datasets_of(n) for n in LINKED} == {
        "reablement_after_discharge_65plus": {"apc", "reablement", "orgs"},
        "carehome_after_discharge_65plus": {"apc", "carehome", "orgs"},
        "readmission_after_reablement_91d": {"apc", "reablement", "orgs"}}


# ------------------------------------------------------------------ linkage rate


def test_linkage_rate_per_council_and_month(con, landing):
    write_csv(landing / "apc_R0A_2024-01.csv", APC_HEADER,
              spell("R0A", "S1", "P1", 80, A, "2024-01-01", discharged="2024-01-05"))   # long before
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              spell("R0A", "S2", "P2", 30, X, "2025-10-01"))                            # any age, area
    write_csv(landing / f"reablement_{A}_2025-10.csv", REABLEMENT_HEADER,
              reablement("C1", "P1", "2025-10-05"),              # links (a spell of any date)
              reablement("C2", "P2", "2025-10-05"),              # links
              reablement("C3", "P3", "2025-10-05"),              # no spell
              reablement("C4", "", "2025-10-05"))                # no person id: not in the rate
    write_csv(landing / f"carehome_{B}_2025-10.csv", CAREHOME_HEADER,
              carehome("K1", "B-0001", "2025-10-05", la=B),      # the council's own ids
              carehome("K2", "B-0002", "2025-09-05", la=B))
    build(con, landing)
    got = con.execute("""select strftime(period_month, '%Y-%m'), la_code, dataset, rows_without_person_id,
                                rows_with_person_id, rows_linked, linkage_rate
                         from linkage_rate order by all""").fetchall()
    assert got == [("2025-09", B, "carehome", 0, 1, 0, 0.0),
                   ("2025-10", A, "reablement", 1, 3, 2, pytest.approx(200 / 3)),
                   ("2025-10", B, "carehome", 0, 1, 0, 0.0)]
