"""Every generation of NHS England's monthly A&E provider CSV since 2017-18 is recognised by its
header, read whatever its column count, wording, total-row spelling, line endings or byte-order
mark, and reconciles to its own TOTAL row; a damaged file never makes the sniffer raise.

Oracle: each file's own TOTAL row, read here with the csv module by the literal header names of
its generation (tests/data/nhse_ae_historic/README.md describes the files).
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from pathlib import Path

import pytest

from flows.errors import FileRejected
from flows.ingest.published import data_records, detect_published, read_published
from tests.conftest import TEST_DATA

HISTORIC = TEST_DATA / "nhse_ae_historic"
REAL_2025 = TEST_DATA / "nhse-ae-monthly-2025-26"

# generation -> (file, month, header wording of each measure the generation has)
OLD_WORDING = {
    "att_type1": "Number of A&E attendances Type 1",
    "att_type2": "Number of A&E attendances Type 2",
    "att_other": "Number of A&E attendances Other A&E Department",
    "over4h_type1": "Number of attendances over 4hrs Type 1",
    "over4h_type2": "Number of attendances over 4hrs Type 2",
    "over4h_other": "Number of attendances over 4hrs Other A&E Department",
}
CURRENT_WORDING = {
    "att_type1": "A&E attendances Type 1",
    "att_type2": "A&E attendances Type 2",
    "att_other": "A&E attendances Other A&E Department",
    "over4h_type1": "Attendances over 4hrs Type 1",
    "over4h_type2": "Attendances over 4hrs Type 2",
    "over4h_other": "Attendances over 4hrs Other Department",
}
BOOKED_WORDING = {
    "att_booked_type1": "A&E attendances Booked Appointments Type 1",
    "att_booked_type2": "A&E attendances Booked Appointments Type 2",
    "att_booked_other": "A&E attendances Booked Appointments Other Department",
    "over4h_booked_type1": "Attendances over 4hrs Booked Appointments Type 1",
    "over4h_booked_type2": "Attendances over 4hrs Booked Appointments Type 2",
    "over4h_booked_other": "Attendances over 4hrs Booked Appointments Other Department",
}
SHARED_WORDING = {
    "dta_4_12h": "Patients who have waited 4-12 hs from DTA to admission",
    "dta_12h": "Patients who have waited 12+ hrs from DTA to admission",
    "emadm_ae_type1": "Emergency admissions via A&E - Type 1",
    "emadm_ae_type2": "Emergency admissions via A&E - Type 2",
    "emadm_ae_other": "Emergency admissions via A&E - Other A&E department",
    "emadm_other": "Other emergency admissions",
}
BOOKED = list(BOOKED_WORDING)
GENERATIONS = {
    "2017-18 to March 2020 (first month)": (
        "MSitAE-2017-04-number-of-wording.csv", "2017-04", OLD_WORDING | SHARED_WORDING),
    "2017-18 to March 2020 (last month)": (
        "MSitAE-2020-03-number-of-wording.csv", "2020-03", OLD_WORDING | SHARED_WORDING),
    "April to July 2020": (
        "MSitAE-2020-06-current-wording-16-columns.csv", "2020-06", CURRENT_WORDING | SHARED_WORDING),
    "August 2020 on": (
        "MSitAE-2020-08-booked-appointments-22-columns.csv", "2020-08",
        CURRENT_WORDING | BOOKED_WORDING | SHARED_WORDING),
}
PROVIDERS = 8         # provider rows in each constructed file


def records_of(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


def is_total(rec: list[str]) -> bool:
    return any(v.strip().lower() == "total" for v in rec[:4])


def published_total(path: Path, wording: dict[str, str]) -> dict[str, int]:
    """The file's own TOTAL row, by the generation's literal header names."""
    header, *rows = records_of(path)
    total = next(r for r in rows if is_total(r))
    return {name: int(total[header.index(text)]) for name, text in wording.items()}


def write_variant(path: Path, records: list[list[str]], *, newline: str = "\n", bom: bool = False) -> Path:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator=newline).writerows(records)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path


def assert_reconciles(pf, expected: dict[str, int], month: str) -> None:
    """Month from content, every record accounted for, provider sums equal to the TOTAL row."""
    assert (pf.dataset, pf.period, pf.periods) == ("nhse_ae", month, [month])
    assert pf.quarantined == [] and pf.check_rows == 1
    assert pf.rows_in == pf.rows_loaded + len(pf.quarantined) + pf.check_rows == PROVIDERS + 1
    assert "TOTAL" not in pf.rows["org_code"].str.to_uppercase().to_list()
    for name, total in expected.items():
        assert pf.rows[name].sum() == total, name
    checks = {c["column"]: c for c in pf.checks if c["check"] == "england_total"}
    assert set(checks) == set(expected)
    assert all(c["ok"] and c["published"] == expected[name] for name, c in checks.items())


# ---------------------------------------------------------------------------------------------
# One test per layout generation

@pytest.mark.parametrize("generation", list(GENERATIONS))
def test_generation_reconciles_with_its_own_total_row(generation):
    name, month, wording = GENERATIONS[generation]
    path = HISTORIC / name
    assert detect_published(path) == "nhse_ae"
    pf = read_published(path)
    expected = published_total(path, wording)
    assert_reconciles(pf, expected, month)
    england_attendances = sum(v for k, v in expected.items() if k.startswith("att_"))
    assert sum(pf.rows[k].sum() for k in expected if k.startswith("att_")) == england_attendances


@pytest.mark.parametrize("generation", [g for g in GENERATIONS if g != "August 2020 on"])
def test_booked_appointments_are_absent_before_august_2020_not_zero(generation):
    pf = read_published(HISTORIC / GENERATIONS[generation][0])
    for column in BOOKED:
        assert pf.rows[column].null_count() == PROVIDERS, column
    assert not any(c["column"] in BOOKED for c in pf.checks)
    assert any("no att_booked_type1" in note for note in pf.notes)


def test_booked_appointments_present_from_august_2020():
    pf = read_published(HISTORIC / GENERATIONS["August 2020 on"][0])
    assert all(pf.rows[column].null_count() == 0 for column in BOOKED)
    assert pf.rows["att_booked_type1"].sum() > 0


def test_old_regional_parent_names_keep_their_commas():
    pf = read_published(HISTORIC / GENERATIONS["2017-18 to March 2020 (first month)"][0])
    parents = set(pf.rows["parent_org"].to_list())
    assert "NHS ENGLAND MIDLANDS AND EAST (NORTH MIDLANDS, EAST)" in parents
    assert "DERBY AND BURTON HOSPITALS, NHS FOUNDATION TRUST" in pf.rows["org_name"].to_list()


def test_real_22_column_files_still_reconcile():
    path = REAL_2025 / "2026-03.csv"
    wording = CURRENT_WORDING | BOOKED_WORDING | SHARED_WORDING
    pf = read_published(path)
    expected = published_total(path, wording)
    assert pf.period == "2026-03" and all(c["ok"] for c in pf.checks)
    assert {name: pf.rows[name].sum() for name in expected} == expected


# ---------------------------------------------------------------------------------------------
# Total rows, line endings, byte-order marks, padding

TOTAL_SPELLINGS = ["TOTAL", "Total", "Total "]


def total_leads(spelling: str) -> dict[str, list[str]]:
    """The first four fields of a total row: the word in one of them, or in all."""
    return {"in all four": [spelling] * 4,
            "period only": [spelling, "", "", ""],
            "org code only": ["", spelling, "", ""],
            "parent org only": ["", "", spelling, ""],
            "org name only": ["", "", "", spelling],
            "period kept, org code": ["MSitAE-JUNE-2020", spelling, "", ""]}


@pytest.mark.parametrize("generation", list(GENERATIONS))
@pytest.mark.parametrize("spelling", TOTAL_SPELLINGS)
@pytest.mark.parametrize("where", list(total_leads("TOTAL")))
def test_total_row_in_any_of_the_first_four_fields(tmp_path, generation, spelling, where):
    name, month, wording = GENERATIONS[generation]
    header, *rows = records_of(HISTORIC / name)
    lead = total_leads(spelling)[where]
    if where == "period kept, org code":
        lead[0] = rows[0][0]
    rows = [lead + r[4:] if is_total(r) else r for r in rows]
    path = write_variant(tmp_path / "download.csv", [header, *rows])
    assert_reconciles(read_published(path), published_total(HISTORIC / name, wording), month)


@pytest.mark.parametrize("generation", list(GENERATIONS))
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("bom", [False, True])
def test_line_endings_and_byte_order_mark(tmp_path, generation, newline, bom):
    name, month, wording = GENERATIONS[generation]
    path = write_variant(tmp_path / "x.csv", records_of(HISTORIC / name), newline=newline, bom=bom)
    assert detect_published(path) == "nhse_ae"
    assert_reconciles(read_published(path), published_total(HISTORIC / name, wording), month)


@pytest.mark.parametrize("generation", list(GENERATIONS))
@pytest.mark.parametrize("padded", [True, False])
def test_stray_header_fields_after_the_last_column(tmp_path, generation, padded):
    """Blank or stray header fields after the last column, with the rows padded to match or not."""
    name, month, wording = GENERATIONS[generation]
    header, *rows = records_of(HISTORIC / name)
    width = len(header)
    header = [h for h in header if h.strip() and h.strip() != "x"] + ["", " ", "Unnamed: 30", ""]
    rows = [r[: len(header) - 4] + ([""] * 4 if padded else []) for r in rows]
    assert len(header) != width or not padded
    path = write_variant(tmp_path / "x.csv", [header, *rows], newline="\r\n")
    assert_reconciles(read_published(path), published_total(HISTORIC / name, wording), month)


def test_blank_values_after_the_last_column_are_allowed_but_a_stray_value_is_not(tmp_path):
    name, month, _ = GENERATIONS["April to July 2020"]
    header, *rows = records_of(HISTORIC / name)
    rows[2] = rows[2] + ["", "", "", "", "7"]       # a value beyond every header field
    pf = read_published(write_variant(tmp_path / "x.csv", [header, *rows]))
    assert [(q[0], q[1]) for q in pf.quarantined] == [(3, "field_count")]
    assert pf.rows_in == pf.rows_loaded + len(pf.quarantined) + pf.check_rows


# ---------------------------------------------------------------------------------------------
# Header wording and column order

REWORDED = {
    "Number of A&E attendances Type 1": "A & E Attendances Type1",
    "Number of A&E attendances Other A&E Department": "A&E attendances other department",
    "Number of attendances over 4hrs Type 1": "Attendances over 4 hours Type 1",
    "Number of attendances over 4hrs Other A&E Department": "Number of attendances over 4 hrs Other Department",
    "Patients who have waited 4-12 hs from DTA to admission":
        "Number of patients who have waited 4 - 12 hours from decision to admit to admission",
    "Emergency admissions via A&E - Other A&E department": "Emergency Admissions via Type 3 and 4 A&E",
    "Emergency admissions via A&E - Type 1": "Emergency Admissions via Type 1 A&E",
    "Other emergency admissions": "Other Emergency Admissions (i.e. not via A&E)",
    "Org Code": "Code",
    "Org name": "Name",
}


def test_wording_variants_and_column_order_do_not_matter(tmp_path):
    name, month, wording = GENERATIONS["2017-18 to March 2020 (first month)"]
    header, *rows = records_of(HISTORIC / name)
    order = [0, 3, 1, 2] + list(range(len(header) - 1, 3, -1))          # counts reversed
    reworded = [REWORDED.get(header[i], header[i]) for i in order]
    reworded.insert(6, "Notes")                                          # an unknown column
    moved = [[r[i] for i in order] for r in rows]
    for r in moved:
        r.insert(6, "")
    pf = read_published(write_variant(tmp_path / "reworded.csv", [reworded, *moved]))
    assert_reconciles(pf, published_total(HISTORIC / name, wording), month)


def test_waits_over_4_hours_from_decision_to_admit_give_the_4_to_12_hour_count(tmp_path):
    """An older wording counts waits over 4 hours (12-hour waits included): the 4-12 hour count
    is the difference, and the TOTAL row is checked on the column the file has."""
    name, month, _ = GENERATIONS["2017-18 to March 2020 (first month)"]
    header, *rows = records_of(HISTORIC / name)
    i4, i12 = header.index(SHARED_WORDING["dta_4_12h"]), header.index(SHARED_WORDING["dta_12h"])
    header[i4] = "Number of patients spending >4 hours from decision to admit to admission"
    header[i12] = "Number of patients spending >12 hours from decision to admit to admission"
    over_4h = [r[:i4] + [str(int(r[i4]) + int(r[i12]))] + r[i4 + 1:] for r in rows]
    pf = read_published(write_variant(tmp_path / "dta.csv", [header, *over_4h]))
    original = read_published(HISTORIC / name)
    assert pf.rows["dta_4_12h"].to_list() == original.rows["dta_4_12h"].to_list()
    assert pf.rows["dta_12h"].to_list() == original.rows["dta_12h"].to_list()
    checks = {c["column"]: c["ok"] for c in pf.checks}
    assert checks["dta_over_4h"] and checks["dta_12h"] and "dta_4_12h" not in checks


def test_a_2017_file_no_longer_stops_at_the_missing_booked_columns():
    """The 2017-18 layout used to raise KeyError('att_booked_type1')."""
    pf = read_published(HISTORIC / GENERATIONS["2017-18 to March 2020 (first month)"][0])
    assert pf.rows.height == PROVIDERS


def test_tab_separated_save_of_the_sheet(tmp_path):
    name, month, wording = GENERATIONS["April to July 2020"]
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter="\t", lineterminator="\r\n").writerows(records_of(HISTORIC / name))
    path = tmp_path / "sheet.txt"
    path.write_bytes(buffer.getvalue().encode("utf-16"))                 # Excel's "Unicode text"
    assert detect_published(path) == "nhse_ae"
    assert_reconciles(read_published(path), published_total(HISTORIC / name, wording), month)


# ---------------------------------------------------------------------------------------------
# Damaged files: the sniffer never raises; the reader rejects them naming the file

def sample_bytes() -> bytes:
    return (HISTORIC / GENERATIONS["August 2020 on"][0]).read_bytes()


def damaged_gzip() -> bytes:
    """A gzip whose deflate stream is damaged (zlib.error when read)."""
    packed = bytearray(gzip.compress(sample_bytes() * 20))
    packed[12:60] = b"\xff" * 48
    return bytes(packed)


DAMAGED = {
    "corrupt deflate stream.csv.gz": damaged_gzip,
    "cut short.csv.gz": lambda: gzip.compress(sample_bytes())[:-30],
    "gzip magic only.csv.gz": lambda: b"\x1f\x8b",
    "bad gzip header.csv.gz": lambda: b"\x1f\x8b\x09\x00" + b"\x00" * 40,
    "empty.csv": lambda: b"",
    "empty.csv.gz": lambda: gzip.compress(b""),
    "garbage.csv": lambda: bytes(range(256)) * 50,
    "nul bytes.csv": lambda: b"Period,Org Code\x00\x00\n" * 10,
    "undecodable.csv": lambda: b"\xff\xfe\xfd\x81\x8d\x8f\x90\x9d" * 100 + b"\n\xc3\x28\n",
    "bom only.csv": lambda: b"\xef\xbb\xbf",
    "one huge field.csv": lambda: b'"' + b"a" * 300_000 + b'"\n',
    "zip workbook.csv": lambda: b"PK\x03\x04" + b"\x00" * 200,
    "utf-16 odd length.csv": lambda: b"\xff\xfe" + "Period,Org Code\n".encode("utf-16-le") + b"\x00",
}


def test_the_damaged_gzip_really_is_damaged():
    with pytest.raises(zlib.error):
        gzip.decompress(damaged_gzip())


@pytest.mark.parametrize("name", list(DAMAGED))
def test_damaged_files_go_through_the_sniffer_without_raising(tmp_path, name):
    path = tmp_path / "landing" / name
    path.parent.mkdir()
    path.write_bytes(DAMAGED[name]())
    assert detect_published(path) is None
    assert data_records(path) == 0
    with pytest.raises(FileRejected) as rejected:
        read_published(path)
    assert rejected.value.detail.startswith(name)               # the name, never the folder
    assert str(tmp_path) not in rejected.value.detail


@pytest.mark.parametrize("name", ["corrupt deflate stream.csv.gz", "cut short.csv.gz",
                                  "bad gzip header.csv.gz"])
def test_a_damaged_gzip_is_rejected_in_plain_words(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(DAMAGED[name]())
    with pytest.raises(FileRejected) as rejected:
        read_published(path)
    assert rejected.value.rule == "unreadable"
    assert rejected.value.detail.startswith(f"{name} cannot be read: ")
    assert "gzip" in rejected.value.detail


def test_an_unclosed_quote_is_quarantined_or_rejected_never_raised(tmp_path):
    path = tmp_path / "unclosed quote.csv"
    path.write_bytes(sample_bytes().replace(b"NHS ENGLAND LONDON", b'"NHS ENGLAND LONDON', 1))
    assert detect_published(path) == "nhse_ae"          # the header is intact
    try:
        pf = read_published(path)
    except FileRejected as rejected:
        assert rejected.value.rule and str(tmp_path) not in rejected.value.detail
    else:
        assert pf.quarantined and pf.rows_in == pf.rows_loaded + len(pf.quarantined) + pf.check_rows
        assert not all(c["ok"] for c in pf.checks)     # the rows swallowed by the quote are missed


def test_a_missing_file_or_a_folder_is_not_a_published_layout(tmp_path):
    assert detect_published(tmp_path / "gone.csv") is None
    assert detect_published(tmp_path) is None
    with pytest.raises(FileRejected) as rejected:
        read_published(tmp_path / "gone.csv")
    assert rejected.value.detail.startswith("gone.csv cannot be read") and str(tmp_path) not in str(rejected.value)


def test_an_ae_file_gzipped_then_damaged_after_its_header_is_rejected_whole(tmp_path):
    """The header is readable (the sniffer says nhse_ae) but the rest is not: a rejection, no traceback."""
    good = gzip.compress(sample_bytes() * 400, compresslevel=1)
    damaged = bytearray(good)
    damaged[len(good) // 2: len(good) // 2 + 64] = b"\x00" * 64
    path = tmp_path / "late damage.csv.gz"
    path.write_bytes(bytes(damaged))
    detect_published(path)                                     # must not raise, whatever it says
    with pytest.raises(FileRejected) as rejected:
        read_published(path)
    assert rejected.value.rule == "unreadable" and "late damage.csv.gz" in rejected.value.detail


def test_counts_saved_as_whole_floats_and_an_england_row(tmp_path):
    """A sheet re-saved by a spreadsheet: counts as 1234.0, the total row named England."""
    name, month, wording = GENERATIONS["April to July 2020"]
    header, *rows = records_of(HISTORIC / name)
    rows = [["", "-", "", "England"] + r[4:] if is_total(r) else r for r in rows]
    rows = [r[:4] + [f"{v}.0" if v.isdigit() else v for v in r[4:]] for r in rows]
    pf = read_published(write_variant(tmp_path / "resaved.csv", [header, *rows]))
    assert_reconciles(pf, published_total(HISTORIC / name, wording), month)


def test_a_file_far_bigger_than_any_publication_is_not_read_whole(tmp_path, monkeypatch):
    """A gzip that expands without end (or any huge file) is rejected, not read into memory."""
    from flows.ingest.published import common
    monkeypatch.setattr(common, "_MAX_BYTES", 4096)
    path = tmp_path / "expands.csv.gz"
    path.write_bytes(gzip.compress(sample_bytes() * 50))
    assert detect_published(path) == "nhse_ae"                   # its header is still recognised
    with pytest.raises(FileRejected) as rejected:
        read_published(path)
    assert rejected.value.rule == "unreadable" and rejected.value.detail.startswith("expands.csv.gz")
    assert data_records(path) == 0


def test_a_name_that_is_not_utf8_is_shown_readably(tmp_path):
    """A damaged file whose name holds bytes that are not UTF-8 (and a control character)."""
    folder = bytes(tmp_path)
    raw_name = b"A&E \xff\xfe march\x07.csv.gz"
    with open(folder + b"/" + raw_name, "wb") as handle:
        handle.write(damaged_gzip())
    path = Path(tmp_path / os.fsdecode(raw_name))
    assert detect_published(path) is None
    with pytest.raises(FileRejected) as rejected:
        read_published(path)
    detail = rejected.value.detail
    assert detail.startswith("A&E \ufffd\ufffd march\ufffd.csv.gz cannot be read: ")
    detail.encode("utf-8")                                          # storable as text
