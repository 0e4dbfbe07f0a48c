"""The loader on hostile but realistic inputs: each is loaded or quarantined, never lost, never
crashes the run, and no NHS number or council person id is stored."""
from __future__ import annotations

import re

import pytest

from flows.db import connect
from flows.ingest.identifiers import nhs_number_valid
from flows.ingest.loader import load_landing
from tests.conftest import write_csv

APC_HEADER = "PROCODE,PROVSPNO,NEWNHSNO,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,DISMETH,DISDEST,DIAG_4_01"
CAREHOME_HEADER = "LA_CODE,CLIENT_ID,PSEUDO_ID,AGE,ADMISSION_DATE,SETTING,PERMANENT,FUNDING"
VALID_NHS = "9434765919"
OTHER_VALID_NHS = "3726705791"


@pytest.fixture
def con(tmp_path):
    con = connect(tmp_path / "j.duckdb")
    yield con
    con.close()


def load(con, landing):
    return load_landing(con, landing, pseudo_key="test-key")


def log(con):
    return {r[0]: r[1:] for r in con.execute(
        "select file_name, status, rows_in, rows_loaded, rows_quarantined from load_log").fetchall()}


def stored_nhs_like_values(con) -> list[str]:
    """What contract-check looks for: any stored text holding a valid 10-digit NHS number."""
    found = []
    for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR'").fetchall():
        for (value,) in con.execute(f'select distinct "{column}" from "{schema}"."{table}"').fetchall():
            if value and any(nhs_number_valid(d) for d in re.findall(r"(?<!\d)\d{10}(?!\d)", value)):
                found.append(f"{table}.{column}: {value}")
    return found


def test_a_rejected_file_sent_again_under_a_corrected_name_loads(con, tmp_path):
    landing = tmp_path / "landing"
    wrong = write_csv(landing / "apc_RXH_2025-13.csv", APC_HEADER, "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50")
    load(con, landing)
    wrong.rename(landing / "apc_RXH_2025-10.csv")          # the rejection's advice, same bytes
    load(con, landing)
    assert log(con)["apc_RXH_2025-13.csv"][0] == "rejected"
    assert log(con)["apc_RXH_2025-10.csv"] == ("loaded", 1, 1, 0)


def test_an_empty_return_for_another_month_is_a_delivery_not_a_duplicate(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "carehome_E06000043_2025-10.csv", CAREHOME_HEADER)
    write_csv(landing / "carehome_E06000043_2025-11.csv", CAREHOME_HEADER)   # the same bytes
    write_csv(landing / "carehome_E06000043_2025-11_copy.csv", CAREHOME_HEADER)
    load(con, landing)
    assert {k: v[0] for k, v in log(con).items()} == {
        "carehome_E06000043_2025-10.csv": "loaded", "carehome_E06000043_2025-11.csv": "loaded",
        "carehome_E06000043_2025-11_copy.csv": "duplicate"}


def test_a_file_with_carriage_return_line_endings_is_rejected_and_the_rest_loads(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "apc_RXH_2025-10.csv").write_bytes(
        (APC_HEADER + "\r" + "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50\r").encode())
    write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER, "RXK,K1,,70,1,E06000043,2025-10-03,21,,,,I50")
    load(con, landing)
    status, rows_in, *_ = log(con)["apc_RXH_2025-10.csv"]
    assert (status, rows_in) == ("rejected", 0)
    assert "carriage return" in con.execute(
        "select reason from load_log where file_name = 'apc_RXH_2025-10.csv'").fetchone()[0]
    assert log(con)["apc_RXK_2025-10.csv"][0] == "loaded"


def test_a_trailing_comma_in_the_header_and_rows_still_loads(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER + ",", "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50,")
    load(con, landing)
    assert log(con)["apc_RXH_2025-10.csv"] == ("loaded", 1, 1, 0)


def test_a_column_named_twice_in_different_case_rejects_the_file_keeping_its_rows(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER + ",admidate",
              "RXH,S1,,70,1,E06000043,2025-10-03,21,,,,I50,2025-10-04")
    load(con, landing)
    assert log(con)["apc_RXH_2025-10.csv"] == ("rejected", 1, 0, 1)
    assert con.execute("select rule from quarantine").fetchall() == [("duplicate_column",)]


def test_two_digit_years_and_fractional_ages_are_quarantined_not_guessed(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER,
              "RXH,S1,,70,1,E06000043,01/10/25,21,,,,I50",         # year 25 AD, not 2025
              "RXH,S2,,64.5,1,E06000043,2025-10-03,21,,,,I50",     # not a whole age
              "RXH,S3,,1e2,1,E06000043,2025-10-03,21,,,,I50",
              "RXH,S4,,+70,1,E06000043,2025-10-3,21,,,,I50")       # loads: 70, 3 October
    load(con, landing)
    assert con.execute("select line_number, rule from quarantine order by 1").fetchall() == [
        (1, "bad_date"), (2, "bad_number"), (3, "bad_number")]
    assert "whole number" in con.execute("select detail from quarantine where line_number = 2").fetchone()[0]
    assert con.execute("select startage, admidate::varchar from raw_apc").fetchall() == [(70, "2025-10-03")]


def test_parquet_timestamps_at_midnight_are_dates_and_whole_floats_are_integers(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    con.execute(f"""copy (select 'RXH' as PROCODE, 'P1' as PROVSPNO, {VALID_NHS}.0::double as NEWNHSNO,
        70.0::double as STARTAGE, '1' as SEX, 'E06000043' as RESLADST_ONS,
        timestamp '2025-10-01 00:00:00' as ADMIDATE, '21' as ADMIMETH, 'I50' as DIAG_4_01
        union all
        select 'RXH', 'P2', null, 80.0, '1', 'E06000043', timestamp '2025-10-02 13:30:00', '21', 'I50')
        to '{landing}/apc_RXH_2025-10.parquet' (format parquet)""")
    load(con, landing)
    assert con.execute("select provspno, startage, admidate::varchar, person_id is not null "
                       "from raw_apc").fetchall() == [("P1", 70, "2025-10-01", True)]
    assert con.execute("select line_number, rule from quarantine").fetchall() == [(2, "bad_date")]


def test_no_nhs_number_or_council_person_id_is_stored_however_it_arrives(con, tmp_path):
    landing = tmp_path / "landing"
    # an NHS number in the PSEUDO_ID column; one typed into STARTAGE (columns swapped)
    write_csv(landing / "apc_RXH_2025-10.csv", APC_HEADER.replace("NEWNHSNO", "PSEUDO_ID"),
              f"RXH,S1,{VALID_NHS},70,1,E06000043,2025-10-03,21,,,,I50",
              f"RXH,S2,70,{OTHER_VALID_NHS},1,E06000043,2025-10-03,21,,,,I50")
    # a council's own person id that happens to be NHS-number-like, in a duplicated key
    write_csv(landing / "carehome_E06000043_2025-10.csv", CAREHOME_HEADER,
              f"E06000043,{OTHER_VALID_NHS},p1,80,2025-10-15,RESIDENTIAL,Y,LA",
              f"E06000043,{OTHER_VALID_NHS},p1,80,2025-10-15,NURSING,Y,LA")
    load(con, landing)
    assert log(con)["apc_RXH_2025-10.csv"] == ("loaded", 2, 1, 1)
    assert log(con)["carehome_E06000043_2025-10.csv"] == ("loaded", 2, 0, 2)
    details = [d for (d,) in con.execute("select detail from quarantine order by all").fetchall()]
    assert any("withheld" in d for d in details) and any("CLIENT_ID (not shown)" in d for d in details)
    assert re.fullmatch(r"[a-p]{32}", con.execute("select person_id from raw_apc").fetchone()[0])
    assert stored_nhs_like_values(con) == []


def test_a_header_the_csv_module_cannot_read_is_rejected_not_a_crash(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    # one header field longer than the csv module's field limit (131,072 characters)
    (landing / "apc_RXH_2025-10.csv").write_text("P" * 200_000 + "\nRXH\n")
    write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER, "RXK,K1,,70,1,E06000043,2025-10-03,21,,,,I50")
    load(con, landing)
    assert log(con)["apc_RXH_2025-10.csv"][:2] == ("rejected", 0)
    assert "header line cannot be read" in con.execute(
        "select reason from load_log where file_name = 'apc_RXH_2025-10.csv'").fetchone()[0]
    assert log(con)["apc_RXK_2025-10.csv"][0] == "loaded"


def test_messages_say_what_is_wrong_with_the_file_as_sent(con, tmp_path):
    landing = tmp_path / "landing"
    write_csv(landing / "apc_RXA_2025-10.csv", "", "RXA,S1,,70,1,E06000043,2025-10-03,21,,,,I50")
    write_csv(landing / "apc_RXB_2025-10.csv", APC_HEADER.replace(",", ";"),
              "RXB;S1;;70;1;E06000043;2025-10-03;21;;;;I50")
    (landing / "apc_RXC_2025-10.csv").write_bytes(
        (APC_HEADER + "\nRXC,S1,,70,1,E06000043,2025-10-03,21,,,,I50\n").encode()
        + "RXC,S2,,70,1,E06000043,2025-10-03,21,,,,Café\n".encode("cp1252"))
    load(con, landing)
    reasons = dict(con.execute("select file_name, reason from load_log").fetchall())
    assert "first line is empty" in reasons["apc_RXA_2025-10.csv"]
    assert "separated by ';'" in reasons["apc_RXB_2025-10.csv"]
    assert log(con)["apc_RXC_2025-10.csv"] == ("loaded", 2, 1, 1)
    assert "not UTF-8" in con.execute("select detail from quarantine where file_name = 'apc_RXC_2025-10.csv'").fetchone()[0]
