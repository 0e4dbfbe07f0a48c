"""Nothing a sender writes escapes the reports folder or runs in a spreadsheet or a browser.

An `orgs` file's codes name report files: a code that is not letters and digits is quarantined
(`bad_org_code`), and the writer refuses such a name even if it reached the database. Its names
go into figures.csv, where a text cell that starts like a formula is neutralised (OWASP), and
into HTML pages, where Jinja escapes them.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from datetime import date
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from flows import paths
from flows.cli import app
from flows.errors import UnsafeOutputPath
from flows.publish.exports import EXPORT_COLUMNS, csv_cell, export_texts
from flows.publish.report import _write, make_environment, render_reports
from tests.conftest import write_csv

MONTH = "2025-04"
ICB = "Q1"
HOSTILE_CODES = ["../x", "..\\x", "/etc/x", "E06000043/../../x", "x/../../../y", "E0600 0043",
                 "E06000043.html", "A", "E060000430000000", "", "\u00c9060000"]
NAMES = {                                      # HWB code -> ORG_NAME as the sender wrote it
    "E08000003": '=HYPERLINK("http://evil.example/x","click")',
    "E08000009": "@SUM(1)",
    "E08000010": "-2+3",
    "E08000011": "\t=1+1",
    "E08000012": "<script>alert(1)</script>",
}
ICB_NAME = "+1"
APC = "PROCODE,PROVSPNO,PSEUDO_ID,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DIAG_4_01"


def write_orgs(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ORG_CODE", "ORG_TYPE", "ORG_NAME", "PARENT_CODE"])
        writer.writerows(rows)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One month built and rendered from an orgs file with hostile codes and names."""
    root = tmp_path_factory.mktemp("hostile-orgs")
    landing = root / "landing"
    orgs = [(ICB, "ICB", ICB_NAME, ""), ("R0A", "PROVIDER", "A trust", ICB)]
    orgs += [(code, "HWB", name, ICB) for code, name in NAMES.items()]
    orgs += [(code, "HWB", "A board", ICB) for code in HOSTILE_CODES if code]
    orgs += [("E08000014", "HWB", "A board with a bad parent", "../../p"),
             ("E08000015", "HWB", "Another", "Q1/../x"), ("", "HWB", "No code", ICB)]
    write_orgs(landing / "orgs_all.csv", orgs)
    write_csv(landing / "population_ONS_2025.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              *(f"{code},2025,{sex},40,1000" for code in NAMES for sex in (1, 2)))
    write_csv(landing / f"apc_R0A_{MONTH}.csv", APC,
              *(f"R0A,S{i},p{i},40,1,{code},{MONTH}-02,21,I50" for i, code in enumerate(NAMES)))
    env = {"JOINEDUP_ORCHESTRATION": "direct"}
    ran = CliRunner(env=env).invoke(app, ["backfill", "--from", MONTH, "--to", MONTH,
                                          "--landing", str(landing), "--db", str(root / "j.duckdb"),
                                          "--reports", str(root / "reports")])
    assert ran.exit_code == 0, ran.output
    return root


def query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def figures(run: Path) -> list[dict]:
    with (run / "reports" / MONTH / "figures.csv").open(newline="") as f:
        return list(csv.DictReader(f))


# --- the orgs rule --------------------------------------------------------------------------------

def test_hostile_codes_are_quarantined_with_their_rule(run):
    db = run / "j.duckdb"
    quarantined = query(db, """select rule, detail from quarantine
                               where file_name = 'orgs_all.csv' order by line_number""")
    by_rule = [r for r in quarantined if r[0] == "bad_org_code"]
    # every bad ORG_CODE but the empty one (missing_key), and the two bad PARENT_CODEs
    assert len(by_rule) == len(HOSTILE_CODES) - 1 + 2, quarantined
    assert ("missing_key", "key column ORG_CODE is empty") in quarantined, quarantined
    details = " ".join(d for _r, d in by_rule)
    assert "ORG_CODE '../x' is not an organisation code" in details
    assert "PARENT_CODE '../../p' is not an organisation code" in details
    loaded = {r[0] for r in query(db, "select org_code from orgs")}
    assert loaded == {ICB, "R0A", *NAMES}
    [(rows_in, rows_loaded, rows_quarantined)] = query(
        db, "select rows_in, rows_loaded, rows_quarantined from load_log where file_name = 'orgs_all.csv'")
    assert rows_in == rows_loaded + rows_quarantined == len(NAMES) + 2 + len(HOSTILE_CODES) + 2
    assert rows_quarantined == len(HOSTILE_CODES) + 2


def test_nothing_is_written_outside_the_reports_folder(run):
    written = files_under(run)
    outside = {p for p in written
               if not p.is_relative_to(run / "reports") and not p.is_relative_to(run / "landing")
               and not p.name.startswith("j.duckdb")}
    assert outside == set()
    pages = {p.relative_to(run / "reports").as_posix() for p in written if p.suffix == ".html"}
    assert pages == {"index.html", f"{MONTH}/{ICB}.html", *(f"{MONTH}/{c}.html" for c in NAMES)}
    assert not Path("/etc/x.html").exists() and not Path("/etc/x").exists()


# --- CSV exports ----------------------------------------------------------------------------------

def test_figures_csv_neutralises_formulas_in_text_cells(run):
    rows = figures(run)
    names = {r["area_code"]: r["area_name"] for r in rows}
    assert names["E08000003"] == "'" + NAMES["E08000003"]
    assert names["E08000009"] == "'@SUM(1)"
    assert names["E08000010"] == "'-2+3"
    assert names[ICB] == "'+1"
    assert names["E08000012"] == NAMES["E08000012"]             # not a formula: as written
    # a name that starts with a tab, if the loader kept the tab, is neutralised
    assert names["E08000011"] in ("'\t=1+1", "'=1+1")
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), (column, cell)
            if cell.startswith("-"):
                float(cell)                                      # only a negative number


def test_json_keeps_names_as_data(run):
    document = json.loads((run / "reports" / MONTH / "figures.json").read_text())
    names = {r["area_code"]: r["area_name"] for r in document["figures"]}
    assert names["E08000009"] == "@SUM(1)" and names[ICB] == "+1"


def test_numbers_stay_numbers_and_text_is_prefixed():
    assert [csv_cell(v) for v in (-5, -2.5, 0, None, "*")] == [-5, -2.5, 0, None, "*"]
    assert [csv_cell(v) for v in ("=1", "+1", "-1+1", "@A1", "\t=1", "\r=1", "a=1")] == \
        ["'=1", "'+1", "'-1+1", "'@A1", "'\t=1", "'\r=1", "a=1"]
    row = dict.fromkeys(EXPORT_COLUMNS) | {"area_name": "-2+3", "variance": -12.345,
                                             "numerator": -3, "metric_title": "=cmd|' /C calc'!A0"}
    text, _json = export_texts([row], date(2025, 4, 1))
    [written] = list(csv.DictReader(io.StringIO(text)))
    assert written["area_name"] == "'-2+3"
    assert written["metric_title"] == "'=cmd|' /C calc'!A0"
    assert (written["variance"], written["numerator"]) == ("-12.35", "-3")
    assert ",-12.35," in text and ",-3," in text                  # unquoted: numeric cells


# --- HTML -----------------------------------------------------------------------------------------

def test_html_pages_escape_names(run):
    page = (run / "reports" / MONTH / "E08000012.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page
    index = (run / "reports" / "index.html").read_text()
    assert "<script>alert(1)" not in index
    env = make_environment()
    for name in ("hwb_page.html.j2", "icb_page.html.j2", "index.html.j2"):
        assert env.get_template(name).environment.autoescape(name) is True


# --- the writer: defence in depth -----------------------------------------------------------------

@pytest.mark.parametrize("code", ["../../EVIL", "/TMP/EVIL", "E08000012/../../EVIL", "..\\EVIL",
                                  "EVIL\nX"])
def test_a_bad_code_in_the_database_names_no_file(run, tmp_path, code, caplog):
    db = tmp_path / "j.duckdb"
    db.write_bytes((run / "j.duckdb").read_bytes())
    con = duckdb.connect(str(db))
    try:
        # as if the database had been edited by hand: the loader would have quarantined this
        con.execute("update raw_orgs set org_code = ? where org_code = 'E08000012'", [code])
        con.execute("update metric_cells set area_code = ? where area_code = 'E08000012'", [code])
        reports = tmp_path / "deep" / "reports"
        with caplog.at_level(logging.WARNING, logger="joinedup.report"):
            render_reports(con, reports, [date(2025, 4, 1)])
    finally:
        con.close()
    written = files_under(tmp_path)
    assert all(p.is_relative_to(reports) or p.name.startswith("j.duckdb") for p in written), written
    assert not any("EVIL" in p.name for p in written)
    assert not Path("/TMP/EVIL.html").exists()
    assert (reports / MONTH / "E08000003.html").exists()          # the other pages are written
    assert "page not written" in caplog.text


def test_the_path_check_refuses_names_and_links_that_leave_the_folder(tmp_path):
    reports, outside = tmp_path / "reports", tmp_path / "outside"
    outside.mkdir()
    for bad in ("../x.html", "2025-04/../../x.html", "/etc/x.html", "2025-04/..\\x.html",
                ".hidden.html", "2025-04/x y.html", "2025-04/E0\n.html"):
        with pytest.raises(UnsafeOutputPath):
            _write(reports / bad, "x", root=reports)
    reports.mkdir()
    os.symlink(outside, reports / "2025-05")       # a month folder that is a link out
    with pytest.raises(UnsafeOutputPath, match="resolves outside"):
        _write(reports / "2025-05" / "figures.csv", "x", root=reports)
    assert list(outside.iterdir()) == [] and files_under(tmp_path) == set()
    _write(reports / "2025-04" / "E06000043.html", "ok", root=reports)
    assert (reports / "2025-04" / "E06000043.html").read_text() == "ok"


def test_codes_are_letters_and_digits_of_a_sensible_length():
    for good in ("E06000043", "RXH", "NT401", "QOP", "Q1", "e06000043"):
        assert paths.is_code(good) and paths.code_file_name(good, ".html") == good + ".html"
    for bad in HOSTILE_CODES + [None, 43, "E06000043 ", "E06000043\x00"]:
        assert not paths.is_code(bad)
        with pytest.raises(UnsafeOutputPath):
            paths.code_file_name(bad, ".html")
