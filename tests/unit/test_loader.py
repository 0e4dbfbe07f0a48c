"""The loader on tiny hand-made extracts whose outcome can be checked by eye."""
from __future__ import annotations

import gzip
import os
import re

import pytest

from flows.db import connect
from flows.errors import PseudoKeyMissing
from flows.ingest.loader import load_landing
from tests.conftest import write_csv

APC_HEADER = "PROCODE,PROVSPNO,NEWNHSNO,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,DISMETH,DISDEST,DIAG_4_01"
VALID_NHS = "9434765919"       # the standard modulus-11 test number
INVALID_NHS = "9434765918"     # wrong check digit


@pytest.fixture
def con(tmp_path):
    con = connect(tmp_path / "j.duckdb")
    yield con
    con.close()


def load(con, landing, key="test-key"):
    return load_landing(con, landing, pseudo_key=key)


def log(con):
    return {r[0]: r[1:] for r in con.execute(
        "select file_name, status, rows_in, rows_loaded, rows_quarantined from load_log").fetchall()}


def rules(con, file_name):
    return con.execute("select line_number, rule from quarantine where file_name = ? "
                       "order by line_number", [file_name]).fetchall()


def test_each_row_is_loaded_or_quarantined_with_its_rule(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER,
              f"RXH,S1,{VALID_NHS},70,1,E06000043,2025-10-03,21,2025-10-05,1,19,I500",   # loads
              f"RXH,S2,{INVALID_NHS},80,2,E06000043,03/10/2025,2A,,,,J45X",             # loads, no person
              "RXH,S3,,70,1,E06000043,2025-11-03,21,,,,I50",                           # admitted after period
              "RXH,S4,,70,1,E06000043,2025-10-03,21,,,,I50",                           # duplicate key
              "RXH,S4,,71,1,E06000043,2025-10-04,21,,,,I50",                           # duplicate key
              "RXH,S5,,70,1",                                                           # too few fields
              "RXH,S6,,150,1,E06000043,2025-10-03,21,,,,I50",                          # age 150
              "RXH,S7,,70,1,E06000043,2025-10-03,21,,,9,I50",                          # DISDEST 9 is not 09
              "RXH,S8,,70,1,E06000043,2025-09-03,21,2025-09-20,1,19,I50",              # ended before period
              "RXH,S9,,70,1,E06000043,2025-10-13,21,2025-10-05,1,19,I50",              # discharged before admitted
              "RXJ,S10,,70,1,E06000043,2025-10-03,21,,,,I50",                          # another provider's row
              "RXH,S11,,70,1,E06000043,2025-02-30,21,,,,I50")                          # not a date
    load(con, landing)
    assert log(con)["apc_RXH_2025-10.csv"] == ("loaded", 12, 2, 10)
    assert rules(con, "apc_RXH_2025-10.csv") == [
        (3, "admidate_after_period_end"), (4, "duplicate_key"), (5, "duplicate_key"),
        (6, "malformed_row"), (7, "age_out_of_range"), (8, "bad_code"),
        (9, "spell_outside_period"), (10, "disdate_before_admidate"), (11, "org_mismatch"),
        (12, "bad_date")]
    persons = con.execute("select provspno, person_id is not null from raw_apc order by 1").fetchall()
    assert persons == [("S1", True), ("S2", False)]
    assert con.execute("select invalid_nhs_numbers from files").fetchone()[0] == 1


@pytest.mark.parametrize("name", ["apc_RXH_2025-10.csv", "apc_RXH_2025-10.csv.gz"])
def test_lines_after_a_quote_that_never_closes_are_quarantined_not_lost(con, tmp_path, name):
    """The parser reads every line after an unclosed quote as text inside that value: those
    lines are counted in the file and each is quarantined, so rows in = loaded + quarantined."""
    landing = tmp_path / "landing"
    lines = [APC_HEADER,
             "RXH,S1,,70,1,E06000043,2025-10-03,21,2025-10-05,1,19,I500",
             'RXH,S2,,70,1,"E06000043,2025-10-03,21,2025-10-05,1,19,I500',      # opens a quote
             "RXH,S3,,70,1,E06000043,2025-10-03,21,2025-10-05,1,19,I500",
             "",
             "RXH,S4,,70,1,E06000043,2025-10-03,21,2025-10-05,1,19,I500"]
    text = "\n".join(lines) + "\n"
    landing.mkdir()
    if name.endswith(".gz"):
        (landing / name).write_bytes(gzip.compress(text.encode()))
    else:
        (landing / name).write_text(text)
    load(con, landing)
    assert log(con)[name] == ("loaded", 4, 1, 3)
    quarantined = con.execute("select line_number, rule, detail from quarantine order by 1").fetchall()
    assert [(line, rule) for line, rule, _ in quarantined] == [
        (2, "malformed_row"), (3, "malformed_row"), (4, "malformed_row")]
    assert all("quote opened on line 2" in detail for _, _, detail in quarantined[1:])


def test_details_name_the_field_and_value_but_never_the_nhs_number(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER,
              f"RXH,S1,{VALID_NHS},70,1,E06000043,2025-10-03,99X,,,,I50")
    load(con, landing)
    (detail,) = con.execute("select detail from quarantine").fetchone()
    assert "ADMIMETH" in detail and "99X" in detail
    dump = " ".join(str(v) for t in ("raw_apc", "quarantine_rows", "files")
                    for row in con.execute(f"select * from {t}").fetchall() for v in row)
    assert VALID_NHS not in dump


def test_headers_are_trimmed_and_case_insensitive_bom_and_gzip_accepted(con, tmp_path):
    landing = tmp_path / "landing"
    header = "\ufeff" + ", ".join(f" {c.lower()} " for c in APC_HEADER.split(","))
    write_csv(landing / "apc_RXH_2025-10.csv", header,
              "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50")
    body = (APC_HEADER + "\nRXK,K1,,70,1,E06000043,2025-10-03,21,,,,I50\n").encode()
    (landing / "apc_RXK_2025-10.csv.gz").write_bytes(gzip.compress(body))
    load(con, landing)
    assert {k: v[0] for k, v in log(con).items()} == {
        "apc_RXH_2025-10.csv": "loaded", "apc_RXK_2025-10.csv.gz": "loaded"}
    assert con.execute("select count(*) from raw_apc").fetchone()[0] == 2


def test_parquet_extracts_load_with_codes_as_text(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    con.execute(f"""copy (select 'RXH' as PROCODE, 'P1' as PROVSPNO, 'p-1' as PSEUDO_ID, '70' as STARTAGE,
        '1' as SEX, 'E06000043' as RESLADST_ONS, '2025-10-01' as ADMIDATE, '2A' as ADMIMETH,
        'I50' as DIAG_4_01) to '{landing}/apc_RXH_2025-10.parquet' (format parquet)""")
    load(con, landing, key=None)
    assert con.execute("select admimeth, person_id from raw_apc").fetchall() == [("2A", "p-1")]


def test_a_file_missing_a_required_column_is_rejected_whole(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER.replace(",DIAG_4_01", ""),
              "RXH,S1,,70,1,E06000043,2025-10-03,21,,,", "RXH,S2,,70,1,E06000043,2025-10-03,21,,,")
    write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER, "RXK,K1,,70,1,E06000043,2025-10-03,21,,,,I50")
    load(con, landing)
    status, rows_in, loaded, quarantined = log(con)["apc_RXH_2025-10.csv"]
    assert (status, rows_in, loaded, quarantined) == ("rejected", 2, 0, 2)
    reason = con.execute("select reason from load_log where status = 'rejected'").fetchone()[0]
    assert "DIAG_4_01" in reason
    assert log(con)["apc_RXK_2025-10.csv"][0] == "loaded"  # the rest of the run goes on


def test_bad_names_and_unreadable_files_are_rejected_with_a_reason(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "admissions october.csv").write_text("a,b\n1,2\n")
    (landing / "apc_RXH_2025-13.csv").write_text(APC_HEADER + "\n")
    (landing / "apc_RXH_2025-10.csv.gz").write_bytes(b"not gzip at all")
    load(con, landing)
    got = {k: (v[0], v[1]) for k, v in log(con).items()}
    assert got == {"admissions october.csv": ("rejected", 1), "apc_RXH_2025-13.csv": ("rejected", 0),
                   "apc_RXH_2025-10.csv.gz": ("rejected", 0)}
    reasons = dict(con.execute("select file_name, reason from load_log").fetchall())
    assert "not a month" in reasons["apc_RXH_2025-13.csv"]
    assert reasons["apc_RXH_2025-10.csv.gz"].startswith("unreadable")


def test_resubmission_supersedes_and_same_bytes_are_a_duplicate(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER,
              "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50", "RXH,S2,,70,1,E06000043,2025-10-03,21,,,,I50")
    load(con, landing)
    write_csv(landing / "apc_RXH_2025-10_resubmission.csv", APC_HEADER,
              "RXH,S1,,70,1,E06000043,2025-10-03,21,2025-10-09,1,19,I50")
    (landing / "apc_RXH_2025-10_copy.csv").write_bytes((landing / "apc_RXH_2025-10.csv").read_bytes())
    load(con, landing)
    assert log(con) == {
        "apc_RXH_2025-10.csv": ("superseded", 2, 2, 0),
        "apc_RXH_2025-10_copy.csv": ("duplicate", 0, 0, 0),
        "apc_RXH_2025-10_resubmission.csv": ("loaded", 1, 1, 0)}
    assert con.execute("select provspno, disdate::varchar from raw_apc").fetchall() == [("S1", "2025-10-09")]


def test_loading_twice_or_in_another_order_gives_the_same_database(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER, "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50")
    write_csv(landing / "apc_RXH_2025-10_v2.csv", APC_HEADER, "RXH,S1,,71,1,E06000043,2025-10-03,21,,,,I50")
    write_csv(landing / "apc_RXH_2025-11.csv", APC_HEADER, "RXH,S1,,71,1,E06000043,2025-10-03,21,2025-11-02,1,19,I50")

    def content(con):
        return [con.execute(f"select * from {v} order by all").fetchall()
                for v in ("load_log", "quarantine", "(select * exclude (file_id) from raw_apc)")]

    once = connect(tmp_path / "a.duckdb")
    load(once, landing)
    load(once, landing)
    twice = connect(tmp_path / "b.duckdb")
    for name in ("apc_RXH_2025-11.csv", "apc_RXH_2025-10_v2.csv", "apc_RXH_2025-10.csv"):
        single = tmp_path / "one" / name
        single.parent.mkdir(exist_ok=True)
        single.write_bytes((landing / name).read_bytes())
    load(twice, tmp_path / "one")
    assert content(once) == content(twice)  # file ids may differ; nothing a reader sees does


def test_files_unchanged_since_hashed_are_not_read_again_and_a_rewritten_one_is(con, tmp_path, monkeypatch):
    from flows.ingest import inspection

    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER, "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50")
    write_csv(landing / "apc_RXH_2025-11.csv", APC_HEADER, "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50")
    load(con, landing)
    hashed = []
    real_sha256_of = inspection.sha256_of
    monkeypatch.setattr(inspection, "sha256_of", lambda path: hashed.append(path.name) or real_sha256_of(path))

    assert load(con, landing).results == [] and hashed == []    # the quick check: name, size, mtime

    rewritten = landing / "apc_RXH_2025-11.csv"    # replaced in place, same name and size
    write_csv(rewritten, APC_HEADER, "RXH,S1,,71,1,E06000043,2025-10-03,21,,,,I50")
    os.utime(rewritten, ns=(rewritten.stat().st_atime_ns, rewritten.stat().st_mtime_ns + 1))
    results = load(con, landing).results
    assert hashed == ["apc_RXH_2025-11.csv"]
    assert [(r.file_name, r.status) for r in results] == [("apc_RXH_2025-11.csv", "loaded")]
    assert con.execute("select startage from raw_apc where period = '2025-11-01'").fetchall() == [(71,)]


def test_nhs_numbers_without_a_key_stop_the_run_before_anything_loads(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "orgs_all.csv", "ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE", "RXH,PROVIDER,X,Q1")
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER,
              f"RXH,S1,{VALID_NHS},70,1,E06000043,2025-10-03,21,,,,I50")
    with pytest.raises(PseudoKeyMissing, match="JOINEDUP_PSEUDO_KEY"):
        load(con, landing, key=None)
    assert con.execute("select count(*) from files").fetchone()[0] == 0


def test_pseudonyms_are_keyed_and_never_look_like_nhs_numbers(tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER, f"RXH,S1,{VALID_NHS},70,1,E06000043,2025-10-03,21,,,,I50")
    ids = []
    for key in ("key-one", "key-two"):
        con = connect(tmp_path / f"{key}.duckdb")
        load(con, landing, key=key)
        ids.append(con.execute("select person_id from raw_apc").fetchone()[0])
    assert ids[0] != ids[1]
    assert all(re.fullmatch(r"[a-p]{32}", i) for i in ids)
