"""The SQL models' `metric_values` against an independent Polars reading of the contract
(`tests/independent_metrics.py`), cell by cell: numerators and denominators exactly, values and
plan values to 1e-9 relative, for every month, HWB, ICB and England.

Three databases are compared:

- the generated sample: six months with its format variants, faulty rows, rejected, duplicate
  and resubmitted files, built once for the module (about ten seconds; the session's
  `sample_landing` is 24 months without faults, so building it would cost most of a minute and
  reach fewer of the loading rules). The same comparison on that 24-month sample also matches;
- a small hand-made landing folder, loaded in four runs, whose rows sit on the edges of the
  rules the sample may not reach: ICD-10 filler and case, J20 with and without a COPD code,
  transfers, infants' ages, readmission windows, a resubmission of an earlier period loaded
  after a later period's file, resubmissions that drop spells and change earlier months,
  council rows re-sent in later files, a population estimate per calendar year and a HWB with
  none, the linked metrics' windows, a later file reaching back 90 days;
- the org tree's corners: a HWB whose PARENT_CODE is no ICB in orgs, an ICB with no HWB.

Provider-level measures and `status` are out of scope.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from flows import schema
from flows.db import connect
from flows.ingest.loader import load_landing
from flows.models.runner import (
    build_months,
    load_project,
    loaded_months,
    plan_months,
    write_catalog,
)
from tests.independent_metrics import (
    CHRONIC_ACSC,
    EMERGENCY,
    FALLS,
    INJURY,
    J20_PRIMARY,
    J20_SECONDARY,
    METRIC_IDS,
    TRANSFERS,
    compute_metric_values,
)
from tests.sql.conftest import (
    CAREHOME_HEADER,
    ENGLAND,
    HWB_A,
    HWB_B,
    ICB,
    ORGS,
    OUTSIDE,
    POPULATION,
    REABLEMENT_HEADER,
    UNKNOWN,
    write_csv,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "sql" / "reference"
KEY = ["period_month", "area_type", "area_code", "metric_id"]
AREA_TYPES = ("hwb", "icb", "england")

# ------------------------------------------------------------------ building the databases


def build_all(con, landing: Path, pseudo_key: str | None) -> None:
    """Load what is new and rebuild every stale month with every model, as a run does."""
    schema.ensure(con)
    load_landing(con, landing, pseudo_key=pseudo_key)
    project = load_project()
    write_catalog(con, project)
    build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="t")


def compare(con) -> pl.DataFrame:
    """Both sides joined on the cell key, with a flag per column that differs."""
    mine = compute_metric_values(con)
    theirs = con.sql(f"""
        select period_month, area_type, area_code, metric_id, numerator, denominator, value,
               plan_value
        from metric_values
        where area_type in {AREA_TYPES} and metric_id in {tuple(METRIC_IDS)}
    """).pl()
    joined = mine.join(theirs, on=KEY, how="full", suffix="_sql", coalesce=True,
                       validate="1:1")
    return joined.with_columns(
        _differs("numerator", exact=True), _differs("denominator", exact=True),
        _differs("value"), _differs("plan_value"))


def _differs(column: str, *, exact: bool = False) -> pl.Expr:
    a, b = pl.col(column), pl.col(f"{column}_sql")
    both_null = a.is_null() & b.is_null()
    if exact:
        same = a == b
    else:
        same = (a - b).abs() <= 1e-9 * pl.max_horizontal(a.abs(), b.abs())
    return ~(both_null | same.fill_null(False)).alias(f"{column}_differs")


def assert_metric_matches(compared: pl.DataFrame, metric_id: str) -> None:
    rows = compared.filter(pl.col("metric_id") == metric_id)
    assert rows.height > 0, f"no cells for {metric_id}"
    flags = ["numerator_differs", "denominator_differs", "value_differs", "plan_value_differs"]
    bad = rows.filter(pl.any_horizontal(flags))
    if bad.height:
        with pl.Config(tbl_rows=20, tbl_cols=-1, tbl_width_chars=250):
            shown = bad.select(*KEY[:3], "numerator", "numerator_sql", "denominator",
                               "denominator_sql", "value", "value_sql", "plan_value",
                               "plan_value_sql")
            pytest.fail(f"{bad.height} of {rows.height} {metric_id} cells differ from the "
                        f"independent reading:\n{shown}")


# ------------------------------------------------------------------ the generated sample


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> pl.DataFrame:
    """Six generated months (formats and faults included), loaded, built and compared."""
    from sample.generate import generate_landing

    root = tmp_path_factory.mktemp("independent-sample")
    generate_landing(root / "landing", seed=7, months=6, faults=True)
    con = connect(root / "sample.duckdb")
    try:
        build_all(con, root / "landing", pseudo_key="independent-metrics-key")
        return compare(con)
    finally:
        con.close()


def test_the_sample_has_the_same_cells_on_both_sides(sample):
    one_sided = sample.filter(pl.col("numerator").is_null() | pl.col("numerator_sql").is_null())
    assert one_sided.select(KEY).rows() == []
    assert sample["metric_id"].n_unique() == len(METRIC_IDS)


@pytest.mark.parametrize("metric_id", METRIC_IDS)
def test_sample_metric_matches_the_independent_reading(sample, metric_id):
    assert_metric_matches(sample, metric_id)


# ------------------------------------------------------------------ hand-made edge cases

A, B, X, OUT = HWB_A, HWB_B, UNKNOWN, OUTSIDE
C = "E08000010"   # a third HWB of the ICB, with no population estimate before 2025
APC = ("PROCODE,PROVSPNO,PSEUDO_ID,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,DISMETH,"
       "DISDEST,DISCHARGE_READY_DATE,DIAG_4_01,DIAG_4_02,DIAG_4_03")
DECEMBER = (  # spell person age res admitted meth discharged dismeth disdest ready diagnoses
    f"R0A,E1,P1,80,2,{A},2024-12-02,21,2024-12-05,1,19,2024-12-04,s72.0,w19-,",  # fall; filler
    f"R0A,E2,P2,7001,1,{B},2024-12-03,2A,2024-12-03,1,19,,J20X,J44.9,",        # infant; J20+COPD
    f"R0A,E3,P3,70,1,{B},2024-12-04,2B,2024-12-10,1,54,,I50.0,,",               # transfer: not avoidable
    f"R0A,E4,P4,70,2,{A},2024-12-05,81,2024-12-08,1,19,,I10X,,",                # dropped by the resubmission
    f"R0A,E5,P5,50,2,{A},2024-12-06,21,2024-12-20,5,79,2024-12-10,J20,,",       # J20 alone; death with DRD
    f"R0A,E6,P6,66,1,{A},2024-12-07,22,2024-12-09,1,,,e11.9,,",                 # no DISDEST; diabetes
    f"R0A,E7,P1,80,2,{X},2024-12-05,21,2024-12-06,1,19,,R69X,,",                # E1 readmitted day 0
    f"R0A,E10,P3,70,1,{B},2024-12-15,11,2024-12-16,1,19,2024-12-16,R69X,,",     # elective: no readmission
    f"R0A,E11,P11,70,1,{A},2024-12-20,21,,,,,T93.1,W01X,",                      # open; see January
    f"R0A,E13,P20,90,2,{A},2024-12-12,21,,,,,S00-,X59,",                         # no fall code
    f"R0A,E14,P14,65,1,{OUT},2024-12-01,21,2024-12-02,1,19,,I10,,",             # outside: counts nowhere
    f"R0A,E15,P15,85,2,{A},2024-11-20,21,2024-12-11,1,19,2024-11-30,S720,W10,",  # 21 days; 11 delayed
    f"R0A,E16,,75,2,{B},2024-12-08,21,2024-12-29,4,19,2024-12-29,D50.9,,",      # no person; death DISMETH 4
    f"R0A,E19,P19,70,1,{C},2024-12-09,21,2024-12-10,1,19,,I20X,,",              # in C
)
DECEMBER_RESUBMITTED = tuple(r for r in DECEMBER if ",E4," not in r) + (
    f"R0A,E17,P17,67,1,{A},2024-12-28,21,2024-12-30,1,19,2024-12-30,I48X,,",    # new in the resubmission
)
JANUARY = (
    f"R0A,E11,P11,70,1,{B},2024-12-20,21,2025-01-10,1,19,2025-01-08,T93.1,W01X,",
    f"R0A,E12,P1,81,2,{A},2025-01-20,21,2025-01-21,1,29,,G30.9,,",             # P1 45 days after reablement
    f"R0A,E13,P20,90,2,{A},2024-12-12,21,2025-01-02,1,56,2025-01-01,S00-,X59,",
)
JANUARY_RESUBMITTED = (
    f"R0A,E11,P11,70,1,{A},2024-12-20,21,2025-01-10,1,19,2025-01-08,T93.1,W01X,",  # back in A
    JANUARY[1],                                                                  # E13 dropped
    f"R0A,E18,P15,85,2,{A},2025-01-05,21,,,,,R69X,,",                           # E15 + 25 days
)
MARCH = (  # loaded last: reaches back to December's reablement rows (91 days)
    f"R0A,E20,P20,90,2,{A},2025-03-12,21,,,,,R69X,,",                           # C5, C7 + 90 days
    f"R0A,E21,P3,70,1,{B},2025-03-12,21,,,,,R69X,,",                            # C4 + 92 days: no
)
JANUARY_RM3 = (
    f"RM3,F1,P2,0,1,{B},2025-01-02,21,,,,,R69X,,",                              # 30 days after E2: no
    f"RM3,F2,P6,66,1,{OUT},2025-01-07,21,2025-01-08,1,19,,R69X,,",              # 29 days after E6: yes
)
REABLEMENT_JANUARY = (f"{A},C2,P6,66,2024-12-11,2024-12-12,HOME",       # now with a status
                      f"{A},C6,,75,2025-01-05,2025-01-06,")             # no person id
CAREHOME_JANUARY = (f"{B},C11,P3,70,2025-01-09,RESIDENTIAL,Y,SELF",     # E3 + 30 days: links
                    f"{B},C12,P6,66,2025-01-09,RESIDENTIAL,Y,LA",       # E6 + 31 days: no link
                    f"{B},C14,P99,65,2024-12-20,NURSING,Y,SELF")        # re-sent as SELF


def write_edge_landing(landing: Path) -> Path:
    write_csv(landing / "orgs_all.csv", *ORGS, f"{C},HWB,Wigan,{ICB}")
    write_csv(landing / "population_ONS_2024.csv", *POPULATION)
    write_csv(landing / "population_ONS_2025.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              f"{A},2025,1,30,600", f"{A},2025,2,64,200", f"{A},2025,1,65,200",
              f"{A},2025,2,90,100", f"{B},2025,1,10,1500", f"{B},2025,2,70,1000",
              f"{C},2025,1,40,400", f"{C},2025,2,80,100")
    write_csv(landing / "plan_E08000003_2024-25.csv", "AREA_CODE,METRIC_ID,PERIOD,PLAN_VALUE",
              f"{A},emergency_admissions,2024-12,100.5",
              f"{A},reablement_after_discharge_65plus,2025-01,5")
    write_csv(landing / "apc_R0A_2024-12.csv", APC, *DECEMBER)
    write_csv(landing / "apc_R0A_2025-01.csv", APC, *JANUARY)
    write_csv(landing / "apc_RM3_2025-01.csv", APC, *JANUARY_RM3)
    write_csv(landing / f"reablement_{A}_2024-12.csv", REABLEMENT_HEADER,
              f"{A},C1,P1,80,2024-12-06,2024-12-07,HOME",       # E1 + 1 day: links
              f"{A},C2,P6,66,2024-12-11,2024-12-12,",           # E6 + 2 days: no; re-sent in Jan
              f"{A},C3,P4,64,2024-12-08,2024-12-09,DIED",       # under 65
              f"{A},C4,P3,70,2024-12-10,2024-12-11,UNKNOWN",    # E3 day 0 (another LA's resident)
              f"{A},C5,P20,90,2024-12-12,2024-12-13,HOME",      # emergency the same day: not 1-91
              f"{A},C7,P20,90,2024-12-12,2024-12-13,")          # same person, second client id
    write_csv(landing / f"reablement_{A}_2025-01.csv", REABLEMENT_HEADER, *REABLEMENT_JANUARY)
    write_csv(landing / f"carehome_{B}_2024-12.csv", CAREHOME_HEADER,
              f"{B},C13,P1,80,2024-12-05,RESIDENTIAL,N,LA",     # not permanent
              f"{B},C14,P99,65,2024-12-20,NURSING,Y,LA",        # re-sent as SELF, then as LA
              f"{B},C15,P98,64,2024-12-21,NURSING,Y,LA")        # under 65
    write_csv(landing / f"carehome_{B}_2025-01.csv", CAREHOME_HEADER, *CAREHOME_JANUARY)
    return landing


def write_resubmissions(landing: Path) -> None:
    """January's files again, changed: E11 back in A, E13 gone, E18 new; C2's status; C14 LA."""
    write_csv(landing / "apc_R0A_2025-01_resubmission.csv", APC, *JANUARY_RESUBMITTED)
    write_csv(landing / f"reablement_{A}_2025-01_resubmission.csv", REABLEMENT_HEADER,
              REABLEMENT_JANUARY[0].replace("HOME", "CARE_HOME"), REABLEMENT_JANUARY[1])
    write_csv(landing / f"carehome_{B}_2025-01_resubmission.csv", CAREHOME_HEADER,
              *CAREHOME_JANUARY[:2], CAREHOME_JANUARY[2].replace("SELF", "LA"))


@pytest.fixture(scope="module")
def edges(tmp_path_factory) -> pl.DataFrame:
    """The hand-made folder loaded and built, as four runs: everything; December's resubmission
    (E4 gone, E17 new) loaded after January's file; January's resubmissions, which change
    December's figures too; March's file, which reaches back to December's reablement rows.
    Each run rebuilds what it made stale, as a scheduled run does."""
    root = tmp_path_factory.mktemp("independent-edges")
    landing = write_edge_landing(root / "landing")
    con = connect(root / "edges.duckdb")
    try:
        build_all(con, landing, pseudo_key=None)
        write_csv(landing / "apc_R0A_2024-12_resubmission.csv", APC, *DECEMBER_RESUBMITTED)
        build_all(con, landing, pseudo_key=None)
        write_resubmissions(landing)
        build_all(con, landing, pseudo_key=None)
        write_csv(landing / "apc_R0A_2025-03.csv", APC, *MARCH)
        build_all(con, landing, pseudo_key=None)
        superseded = {r[0] for r in con.execute(
            "select file_name from files where status = 'superseded'").fetchall()}
        assert superseded == {"apc_R0A_2024-12.csv", "apc_R0A_2025-01.csv",
                              f"reablement_{A}_2025-01.csv", f"carehome_{B}_2025-01.csv"}
        assert con.execute("select count(*) from files where status <> 'loaded' "
                           "and status <> 'superseded'").fetchall() == [(0,)]
        return compare(con)
    finally:
        con.close()


def test_the_edge_cases_have_the_same_cells_on_both_sides(edges):
    one_sided = edges.filter(pl.col("numerator").is_null() | pl.col("numerator_sql").is_null())
    assert one_sided.select(KEY).rows() == []
    assert edges["metric_id"].n_unique() == len(METRIC_IDS)


def test_the_independent_reading_of_the_edge_cases(edges):
    """The Polars side on cells worked out by hand, so the reference itself is checked."""
    def cell(metric, month, area):
        row = edges.filter((pl.col("metric_id") == metric) & (pl.col("area_code") == area)
                           & (pl.col("period_month") == pl.lit(month).str.to_date()))
        return row.select("numerator", "denominator", "plan_value").row(0)

    dec, jan = "2024-12-01", "2025-01-01"
    # December, A: E1 E5 E6 E11 E13 E17 (not E15, admitted in November; E11 by January's
    # resubmission; E13 by December's row once January's resubmission dropped it); 2024 estimate
    assert cell("emergency_admissions", dec, A) == (6, 1000, 100.5)
    assert cell("emergency_admissions", dec, B) == (3, 2000, None)     # E2 (2A) E3 (2B) E16
    # C has no estimate at or before 2024: no denominator, and so none for the ICB or England
    assert cell("emergency_admissions", dec, C) == (1, None, None)     # E19
    assert cell("emergency_admissions", dec, ICB) == (10, None, None)
    assert cell("emergency_admissions", dec, ENGLAND) == (10, None, None)
    # January uses the 2025 estimates (A 1,100, 65+ 300; B 2,500, 1,000; C 500, 100)
    assert cell("emergency_admissions_65plus", jan, A) == (2, 300, None)      # E12 E18
    assert cell("emergency_admissions_65plus", jan, B) == (0, 1000, None)     # F1 is 0
    assert cell("emergency_admissions", jan, ICB) == (3, 4100, None)          # E12 E18 F1
    # avoidable: E6 (e11.9), E17 (I48X); E2 (J20X + J44.9), E16 (D50.9); not E3 (2B), E5 (J20
    # alone)
    assert cell("avoidable_admissions", dec, A)[0] == 2
    assert cell("avoidable_admissions", dec, B)[0] == 2
    # falls: E1 (s72.0 + w19-), E11 (T93.1 + W01X); not E13 (X59), E15 (November)
    assert cell("falls_admissions_65plus", dec, A)[0] == 2
    assert cell("falls_admissions_65plus", dec, B)[0] == 0
    # readmissions, December: alive discharges with a person id in A: E1 (day 0: E7), E6 (day
    # 29: F2 at RM3, outside), E15 (E18, 25 days, from January's resubmission), E17; in B: E2
    # (F1 30 days: no), E3 (E10 elective: no), E10.
    assert cell("readmissions_30d", dec, A)[:2] == (3, 4)
    assert cell("readmissions_30d", dec, B)[:2] == (0, 3)
    # discharge to usual residence, December A: E1 E15 E17 home, E6 no DISDEST; not E5 (death)
    assert cell("discharge_to_usual_residence", dec, A)[:2] == (3, 4)
    # ready date, December A: E1 (1 late), E5 (death, 10 late), E15 (11 late), E17 (on the day)
    assert cell("discharged_on_ready_date", dec, A)[:2] == (1, 4)
    assert cell("discharge_delay_days", dec, A)[:2] == (22, 3)
    # council rows: C14 re-sent as SELF, then as LA again; C12 in January
    assert cell("care_home_admissions_65plus", dec, B)[0] == 1
    assert cell("care_home_admissions_65plus", jan, B)[0] == 1
    # reablement at home, December A: C1 HOME, C5 HOME, C2 CARE_HOME (re-sent twice), C4
    # UNKNOWN; not C7 (no status yet), C3 (64)
    assert cell("reablement_at_home_91d", dec, A)[:2] == (2, 4)
    # linked, December: 65+ alive discharges with a person id in A: E1 (C1 +1 day), E6 (C2 +2:
    # no), E15, E17; in B: E3 (C4 the same day; C11 +30 days), E10 (C11 +24 days: one council
    # row follows both discharges).
    assert cell("reablement_after_discharge_65plus", dec, A)[:2] == (1, 4)
    assert cell("reablement_after_discharge_65plus", dec, B)[:2] == (1, 2)
    assert cell("carehome_after_discharge_65plus", dec, A)[:2] == (0, 4)
    assert cell("carehome_after_discharge_65plus", dec, B)[:2] == (2, 2)
    # readmission after reablement, December A: C1 (E12 45 days), C2 (F2 27 days), C5 and C7
    # (E20, 90 days, from March's file; E13 the same day does not count); not C4 (E21 92 days)
    assert cell("readmission_after_reablement_91d", dec, A)[:2] == (4, 5)
    assert cell("reablement_after_discharge_65plus", jan, A)[2] == 5


@pytest.mark.parametrize("metric_id", METRIC_IDS)
def test_edge_metric_matches_the_independent_reading(edges, metric_id):
    assert_metric_matches(edges, metric_id)


# ------------------------------------------------------------------ the org tree's corners

NOT_AN_ICB = "E54000098"   # the PARENT_CODE of a HWB, listed nowhere in orgs
OTHER_ICB = "E54000099"    # an ICB in orgs with a provider but no HWB


@pytest.fixture(scope="module")
def org_corners(tmp_path_factory) -> pl.DataFrame:
    """December's spells with an org tree that has a HWB (C) whose PARENT_CODE is no ICB in
    orgs, and an ICB whose only org is a provider."""
    root = tmp_path_factory.mktemp("independent-orgs")
    landing = root / "landing"
    write_csv(landing / "orgs_all.csv", *ORGS, f"{C},HWB,Wigan,{NOT_AN_ICB}",
              f"{OTHER_ICB},ICB,Another integrated care board,",
              f"RWW,PROVIDER,Warrington and Halton Teaching Hospitals,{OTHER_ICB}")
    write_csv(landing / "population_ONS_2024.csv", *POPULATION, f"{C},2024,1,40,400",
              f"{C},2024,2,80,100")
    write_csv(landing / "apc_R0A_2024-12.csv", APC, *DECEMBER)
    con = connect(root / "orgs.duckdb")
    try:
        build_all(con, landing, pseudo_key=None)
        return compare(con)
    finally:
        con.close()


def test_org_corners_the_cells_on_both_sides_match(org_corners):
    both = org_corners.filter(pl.col("numerator").is_not_null() & pl.col("numerator_sql").is_not_null())
    # C counts in England: December's emergency admissions are E1 E5 E6 E11 E13 in A, E2 E3 E16
    # in B and E19 in C
    england = both.filter((pl.col("metric_id") == "emergency_admissions") & (pl.col("area_code") == ENGLAND))
    assert england.select("numerator", "denominator").row(0) == (9, 3500)
    for metric_id in METRIC_IDS:
        assert_metric_matches(both, metric_id)


def test_org_corners_an_icb_with_no_hwb_has_no_cells_on_either_side(org_corners):
    assert org_corners.filter(pl.col("area_code") == OTHER_ICB).height == 0


def test_org_corners_icb_cells_are_only_for_icbs_in_orgs(org_corners):
    sql_only = org_corners.filter(pl.col("numerator").is_null()).select(KEY).unique()
    mine_only = org_corners.filter(pl.col("numerator_sql").is_null()).select(KEY).unique()
    assert mine_only.height == 0
    assert sql_only["area_code"].unique().to_list() == []


# ------------------------------------------------------------------ the code lists


def reference(name: str) -> pl.DataFrame:
    return pl.read_csv(REFERENCE / f"{name}.csv", infer_schema=False)


def test_the_independent_code_lists_are_the_projects():
    methods = reference("ref_admission_method")
    assert set(methods.filter(pl.col("is_emergency") == "true")["code"]) == EMERGENCY
    assert set(methods.filter(pl.col("is_transfer") == "true")["code"]) == TRANSFERS
    acsc = reference("ref_icd10_chronic_acsc")
    plain = set(acsc.filter(pl.col("requires_secondary").is_null())["code_prefix"])
    assert plain == set(CHRONIC_ACSC)
    conditional = acsc.filter(pl.col("requires_secondary").is_not_null())
    assert conditional.rows() and conditional["code_prefix"].to_list() == [J20_PRIMARY]
    assert set(conditional["requires_secondary"][0].split("|")) == set(J20_SECONDARY)
    assert set(reference("ref_icd10_falls")["code_prefix"]) == FALLS
    assert set(reference("ref_icd10_injury")["code_prefix"]) == INJURY


def test_the_independent_reading_uses_nothing_of_the_project():
    """The reference reads the raw tables through DuckDB: no project code, no project SQL."""
    source = (ROOT / "tests" / "independent_metrics.py").read_text()
    assert "flows" not in source and "sql/" not in source and "ref_" not in source
