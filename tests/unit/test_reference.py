"""Reference code lists in sql/reference/ (ref_<name>.csv).

Every list is read the way the pipeline reads it, with DuckDB and every column as text, so
codes such as `09`, `2A` or `0` stay exactly as written.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
import pytest

from flows.ingest.datasets import DATASETS

REF_DIR = Path(__file__).resolve().parents[2] / "sql" / "reference"

EXPECTED = {
    "admission_method", "admission_source", "patient_classification", "discharge_method",
    "discharge_destination", "sex", "population_sex", "reablement_status", "care_setting",
    "yes_no", "care_funding", "org_type",
    "icd10_chronic_acsc", "icd10_falls", "icd10_injury",
}
ICD_LISTS = {"icd10_chronic_acsc", "icd10_falls", "icd10_injury"}
EMERGENCY = {"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"}


def ref_path(name: str) -> Path:
    return REF_DIR / f"ref_{name}.csv"


def load(name: str) -> tuple[list[str], list[dict[str, str | None]]]:
    """Columns and rows of a reference list, all values as text (NULL for empty)."""
    con = duckdb.connect()
    try:
        rel = con.execute("SELECT * FROM read_csv(?, all_varchar = true)", [str(ref_path(name))])
        cols = [d[0] for d in rel.description]
        rows = [dict(zip(cols, r)) for r in rel.fetchall()]
    finally:
        con.close()
    return cols, rows


def key_column(cols: list[str]) -> str:
    return "code" if "code" in cols else "code_prefix"


def codes(name: str) -> list[str]:
    cols, rows = load(name)
    return [r[key_column(cols)] for r in rows]


def flagged(name: str, flag: str) -> set[str]:
    cols, rows = load(name)
    return {r[key_column(cols)] for r in rows if r[flag] == "true"}


ALL = sorted(EXPECTED)


# --- every list -----------------------------------------------------------------------------

def test_expected_files_exist():
    present = {p.name[len("ref_"):-len(".csv")] for p in REF_DIR.glob("ref_*.csv")}
    assert present >= EXPECTED, f"missing: {sorted(EXPECTED - present)}"


def test_every_codes_name_in_datasets_has_a_list():
    names = {c.codes for d in DATASETS.values() for c in d.columns if c.codes}
    for name in names:
        assert ref_path(name).exists(), f"datasets.py names codes={name!r} but ref_{name}.csv is missing"
        cols, _ = load(name)
        assert cols[0] == "code", f"ref_{name}.csv: first column must be `code`"


@pytest.mark.parametrize("name", ALL)
def test_utf8_header_and_first_column(name):
    raw = ref_path(name).read_bytes()
    raw.decode("utf-8")  # raises if not UTF-8
    assert not raw.startswith(b"\xef\xbb\xbf"), "no BOM in reference files"
    cols, rows = load(name)
    assert rows, "list is empty"
    expected_first = "code_prefix" if name in ICD_LISTS else "code"
    assert cols[0] == expected_first
    assert "description" in cols or "condition" in cols
    assert all(c == c.strip().lower() for c in cols), "header names are lower case, no spaces"


@pytest.mark.parametrize("name", ALL)
def test_codes_unique_nonempty_trimmed(name):
    values = codes(name)
    assert all(v is not None and v != "" for v in values), "empty code"
    assert all(v == v.strip() for v in values), "code with surrounding whitespace"
    dupes = sorted({v for v in values if values.count(v) > 1})
    assert not dupes, f"duplicate codes: {dupes}"


@pytest.mark.parametrize("name", ALL)
def test_codes_read_by_duckdb_equal_the_text_in_the_file(name):
    """all_varchar keeps codes exactly as written (leading zeros, alphanumerics)."""
    with ref_path(name).open(encoding="utf-8", newline="") as fh:
        file_codes = [row[0] for row in csv.reader(fh)][1:]
    assert codes(name) == file_codes


@pytest.mark.parametrize("name", ALL)
def test_boolean_flags_are_true_or_false(name):
    cols, rows = load(name)
    for col in (c for c in cols if c.startswith("is_")):
        bad = {r[col] for r in rows} - {"true", "false"}
        assert not bad, f"{col}: {bad}"


# --- ADMIMETH -------------------------------------------------------------------------------

def test_admission_method_full_list():
    assert set(codes("admission_method")) == {
        "11", "12", "13", "21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28",
        "31", "32", "81", "82", "83", "98", "99",
    }
    assert all(len(c) == 2 for c in codes("admission_method"))


def test_emergency_set_exact():
    assert flagged("admission_method", "is_emergency") == EMERGENCY


def test_transfer_set_exact():
    assert flagged("admission_method", "is_transfer") == {"2B", "81"}


def test_admission_method_categories():
    _, rows = load("admission_method")
    cat = {r["code"]: r["category"] for r in rows}
    assert set(cat.values()) <= {"elective", "emergency", "maternity", "other"}
    assert {c for c, v in cat.items() if v == "emergency"} == EMERGENCY
    assert {c for c, v in cat.items() if v == "elective"} == {"11", "12", "13"}
    assert {c for c, v in cat.items() if v == "maternity"} == {"31", "32"}


# --- ADMISORC -------------------------------------------------------------------------------

def test_admission_source_codes_two_digits_both_generations():
    values = set(codes("admission_source"))
    assert all(re.fullmatch(r"[0-9]{2}", c) for c in values)
    old = {"39", "54", "65", "85"}
    new = {"37", "40", "42", "55", "56"}
    common = {"19", "29", "49", "51", "52", "53", "66", "79", "87", "88", "98", "99"}
    assert values == old | new | common
    assert flagged("admission_source", "is_care_home") == {"54", "55", "56", "65", "85"}


# --- CLASSPAT, DISMETH, SEX -----------------------------------------------------------------

def test_patient_classification():
    assert set(codes("patient_classification")) == {"1", "2", "3", "4", "5", "8", "9"}
    assert flagged("patient_classification", "is_regular_attender") == {"3", "4"}


def test_discharge_method():
    # 6 and 7 are MHSDS-only codes, not valid in the admitted patient care (CDS) extract
    assert set(codes("discharge_method")) == {"1", "2", "3", "4", "5", "8", "9"}
    assert flagged("discharge_method", "is_death") == {"4", "5"}
    assert flagged("discharge_method", "is_not_applicable_or_unknown") == {"8", "9"}


def test_sex_lists():
    assert set(codes("sex")) == {"0", "1", "2", "9"}
    assert set(codes("population_sex")) == {"1", "2"}


# --- DISDEST --------------------------------------------------------------------------------

def test_discharge_destination_codes_keep_two_digits():
    values = set(codes("discharge_destination"))
    assert "19" in values and "9" not in values
    assert all(re.fullmatch(r"[0-9]{2}", c) for c in values)
    old_only = {"38", "54", "65", "85"}
    new_only = {"40", "42", "55", "56", "89"}
    common = {"19", "29", "30", "37", "48", "49", "50", "51", "52", "53", "66", "79",
              "84", "87", "88", "98", "99"}
    assert values == old_only | new_only | common


def test_discharge_destination_flags_and_groups():
    assert flagged("discharge_destination", "is_usual_residence") == {"19"}
    assert flagged("discharge_destination", "is_care_home") == {"54", "55", "56", "65", "85"}
    assert flagged("discharge_destination", "is_death") == {"79"}
    assert flagged("discharge_destination", "is_not_applicable_or_unknown") == {"98", "99"}
    _, rows = load("discharge_destination")
    group = {r["code"]: r["group"] for r in rows}
    assert set(group.values()) <= {
        "home_usual", "home_temporary", "care_home", "other_hospital", "hospice", "died",
        "criminal_justice", "other", "not_applicable", "unknown",
    }
    assert group["19"] == "home_usual" and group["29"] == "home_temporary"
    assert group["79"] == "died" and group["88"] == "hospice"
    assert group["98"] == "not_applicable" and group["99"] == "unknown"
    assert {c for c, g in group.items() if g == "care_home"} == {"54", "55", "56", "65", "85"}


# --- social care and organisations ---------------------------------------------------------

def test_reablement_status():
    assert set(codes("reablement_status")) == {"HOME", "CARE_HOME", "HOSPITAL", "DIED", "UNKNOWN"}
    assert flagged("reablement_status", "is_home") == {"HOME"}


def test_small_lists():
    assert set(codes("care_setting")) == {"RESIDENTIAL", "NURSING"}
    assert set(codes("yes_no")) == {"Y", "N"}
    assert flagged("yes_no", "is_yes") == {"Y"}
    assert set(codes("care_funding")) == {"LA", "SELF", "NHS", "JOINT"}
    assert set(codes("org_type")) == {"PROVIDER", "HWB", "ICB"}


# --- ICD-10 ---------------------------------------------------------------------------------

NORMALISED = re.compile(r"[A-Z][0-9]{2}[0-9]?")  # upper case, no dot, no trailing filler


@pytest.mark.parametrize("name", sorted(ICD_LISTS))
def test_icd_prefixes_normalised_and_not_overlapping(name):
    prefixes = codes(name)
    assert all(NORMALISED.fullmatch(p) for p in prefixes), [p for p in prefixes if not NORMALISED.fullmatch(p)]
    overlaps = [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]
    assert not overlaps, f"a prefix inside another would count a spell twice: {overlaps}"


def test_falls_w00_to_w19():
    assert codes("icd10_falls") == [f"W{i:02d}" for i in range(20)]


def test_injury_covers_s00_to_t98():
    expected = {f"S{i:02d}" for i in range(100)} | {f"T{i:02d}" for i in range(99)}
    assert set(codes("icd10_injury")) == expected
    assert "T99" not in codes("icd10_injury")


def test_chronic_acsc_list():
    cols, rows = load("icd10_chronic_acsc")
    assert {"code_prefix", "condition", "requires_secondary", "status", "note"} <= set(cols)
    by_prefix = {r["code_prefix"]: r for r in rows}
    expected = {
        "B180", "B181", "D501", "D508", "D509", "E10", "E11", "E12", "E13", "E14",
        "F00", "F01", "F02", "F03", "G30", "G40", "G41", "O15", "R56", "I10", "I110", "I119",
        "I20", "I25", "I48", "I50", "J20", "J41", "J42", "J43", "J44", "J45", "J46", "J47", "J81",
    }
    assert set(by_prefix) == expected
    assert len({r["condition"] for r in rows}) == 11
    assert {r["status"] for r in rows} <= {"confirmed", "to_verify"}
    # Only J20 carries a secondary-diagnosis condition.
    assert {p for p, r in by_prefix.items() if r["requires_secondary"]} == {"J20"}
    assert by_prefix["J20"]["requires_secondary"].split("|") == ["J41", "J42", "J43", "J44", "J47"]


def test_icd_lists_join_on_normalised_codes():
    """The lists work with the contract's normalisation: upper case, no dot, no trailing X/-."""
    con = duckdb.connect()
    try:
        for name in sorted(ICD_LISTS):
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_csv(?, all_varchar = true)",
                        [str(ref_path(name))])
        con.execute("""
            CREATE TABLE diag AS
            SELECT raw, regexp_replace(upper(replace(trim(raw), '.', '')), '[X-]+$', '') AS code
            FROM (VALUES ('i10x'), ('I50.0'), ('J45X'), ('I11.0'), ('I11.9'), ('I11.2'), ('D50.0'),
                         ('J20.9'), ('S72.0'), ('T98.3'), ('W19X'), ('W01.-'), ('E11.9')) t(raw)
        """)
        acsc = dict(con.execute("""
            SELECT d.raw, a.condition FROM diag d
            JOIN icd10_chronic_acsc a ON starts_with(d.code, a.code_prefix)
        """).fetchall())
        falls = {r[0] for r in con.execute(
            "SELECT d.raw FROM diag d JOIN icd10_falls f ON left(d.code, 3) = f.code_prefix").fetchall()}
        injury = {r[0] for r in con.execute(
            "SELECT d.raw FROM diag d JOIN icd10_injury i ON left(d.code, 3) = i.code_prefix").fetchall()}
    finally:
        con.close()
    assert acsc == {
        "i10x": "Hypertension", "I50.0": "Congestive heart failure", "J45X": "Asthma",
        "I11.0": "Congestive heart failure", "I11.9": "Hypertension",
        "J20.9": "Chronic obstructive pulmonary disease",  # still needs a J41-J44/J47 secondary
        "E11.9": "Diabetes",
    }
    assert falls == {"W19X", "W01.-"}
    assert injury == {"S72.0", "T98.3"}
