"""Hostile landing folders, one guarantee at a time: a file's failure of any kind rejects that
file alone, no number that could be an NHS number is stored, links are never followed, and a
sender's column names never collide with joinedup's own."""
from __future__ import annotations

import errno
import os
import re
import shutil
import zlib
from pathlib import Path

import duckdb
import pytest

import flows
from flows.db import connect
from flows.errors import FileRejected
from flows.ingest import identifiers, inspection, judging, loader, published, writing
from flows.ingest.loader import load_landing, skipped_summary
from flows.ingest.naming import display_name, parse_file_name
from tests.conftest import TEST_DATA, write_csv

APC_HEADER = "PROCODE,PROVSPNO,NEWNHSNO,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,DISMETH,DISDEST,DIAG_4_01"
VALID_NHS = "9434765919"
AE_SOURCE = TEST_DATA / "nhse-ae-monthly-2025-26" / "2025-10.csv"
AE_NAME = "AE download Oct.csv"

# An independent scanner (not the code under test): ten or more digits with any whitespace,
# dashes or dots between them.
LEAK = re.compile(r"\d(?:[\s.\-\u2010-\u2015\u2212\u00a0]*\d){9,}")


def apc_row(procode: str, spell: str, nhs: str = "", diag: str = "I50") -> str:
    return f"{procode},{spell},{nhs},70,1,E06000043,2025-10-03,21,,,,{diag}"


@pytest.fixture
def con(tmp_path):
    con = connect(tmp_path / "j.duckdb")
    yield con
    con.close()


def load(con, landing: Path):
    return load_landing(con, landing, pseudo_key="test-key")


def log(con) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in con.execute(
        "select file_name, status, rows_in, rows_loaded, rows_quarantined, reason from load_log").fetchall()}


def every_text_value(con) -> list[tuple[str, str]]:
    """(table.column, value) for every text value in every table and view."""
    found = []
    for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON') or data_type like 'VARCHAR[%'").fetchall():
        for (value,) in con.execute(f'select distinct "{column}"::varchar from "{schema}"."{table}"').fetchall():
            if value:
                found.append((f"{table}.{column}", value))
    return found


def leaks(con) -> list[str]:
    return [f"{where}: {value!r}" for where, value in every_text_value(con) if LEAK.search(value)]


# ---------------------------------------------------------------- could be an NHS number

POSSIBLE = ["9434765919", "943 476 5919", "943  476  5919", "943\t476\t5919", "943 - 476 - 5919",
            "943.476.5919", "943-476-5919", "9434765918", "94 34 76 59 19", "943\u00a0476\u20135919",
            "nhs:9434765919!", "12345678901234", "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19"]
NOT_POSSIBLE = ["2025-10-03", "123456789", "943 476 591", "E06000043", "RXH01", "01/10/2025",
                "3.5", "2025-10-03 to 2025-10-31", "E06000043,2025"]


@pytest.mark.parametrize("text", POSSIBLE)
def test_any_ten_digit_run_whatever_separates_it_could_be_an_nhs_number(text):
    assert identifiers.could_be_nhs_number(text)
    assert not LEAK.search(identifiers.withhold_numbers(text).replace("\uff10", ""))
    masked = duckdb.connect().execute("select " + identifiers.withhold_numbers_sql("$t"), {"t": text}).fetchone()[0]
    assert masked == identifiers.withhold_numbers(text) and identifiers.WITHHELD in masked


@pytest.mark.parametrize("text", NOT_POSSIBLE)
def test_dates_codes_and_short_numbers_stay_readable(text):
    assert not identifiers.could_be_nhs_number(text)
    assert identifiers.withhold_numbers(text) == text


# ---------------------------------------------------------------- names


def test_a_name_is_stored_readable_whatever_its_bytes():
    assert display_name(os.fsdecode(b"apc_RXH_2025-10_\xff\xfe.csv")) == "apc_RXH_2025-10_\\xff\\xfe.csv"
    assert display_name("apc_RXH_2025-10_\x1b[31m\n.csv") == "apc_RXH_2025-10_\\x1b[31m\\x0a.csv"
    assert display_name("apc_RXH_2025-10_\u202egnp.csv") == "apc_RXH_2025-10_\\u202egnp.csv"
    long = display_name("apc_RXH_2025-10_" + "x" * 300 + ".csv")
    assert len(long) <= 160 and long.startswith("apc_RXH_2025-10_") and long.endswith(".csv")
    assert display_name("apc_RXH_2025-10_943 476 5919.csv") == f"apc_RXH_2025-10_{identifiers.WITHHELD}.csv"


@pytest.mark.parametrize(("name", "says"), [
    (os.fsdecode(b"apc_RXH_2025-10_\xff.csv"), "not UTF-8"),
    ("apc_RXH_2025-10_\x07.csv", "control or invisible characters (U+0007)"),
    ("apc_9434765919_2025-10.csv", "could be an NHS number"),
    ("plan_943 476 5919.csv", "name must be"),
])
def test_a_name_that_is_not_plain_text_is_rejected_with_a_readable_reason(name, says):
    with pytest.raises(FileRejected) as rejected:
        parse_file_name(name)
    assert says in rejected.value.detail
    assert not LEAK.search(str(rejected.value))


def test_names_that_cannot_be_typed_or_hold_numbers_never_stop_the_run(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    good = write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER, apc_row("RXK", "K1"))
    names = [b"apc_RXH_2025-10_\xff.csv", b"apc_RXH_2025-10_\x1b.csv", b"apc_RXH_2025-10_\xff.parquet",
             ("apc_RXH_2025-10_" + "y" * 230 + ".csv").encode(), "apc_RXH_2025-10_été 943-476-5919.csv".encode()]
    for i, raw in enumerate(names):
        with open(os.path.join(os.fsencode(landing), raw), "wb") as handle:
            handle.write(good.read_bytes().replace(b"K1", f"H{i}".encode()).replace(b"RXK", b"RXH"))
    load(con, landing)
    rows = log(con)
    assert len(rows) == len(names) + 1
    assert rows["apc_RXK_2025-10.csv"][:2] == ("loaded", 1)
    assert rows["apc_RXH_2025-10_\\xff.csv"][0] == "rejected"
    assert "not UTF-8" in rows["apc_RXH_2025-10_\\xff.csv"][4]
    assert "control or invisible" in rows["apc_RXH_2025-10_\\x1b.csv"][4]
    assert rows[f"apc_RXH_2025-10_été {identifiers.WITHHELD}.csv"][0] == "loaded"
    assert all(r[1] == r[2] + r[3] for r in rows.values())
    assert leaks(con) == []


# ---------------------------------------------------------------- each stage fails in turn

CONTRACT_TARGET = "apc_RXH_2025-10.csv"
# (module, function, the file it fails for, what it raises)
STAGES = [
    (inspection, "sha256_of", CONTRACT_TARGET, OSError(errno.EACCES, "Permission denied")),
    (inspection, "parse_file_name", CONTRACT_TARGET, RuntimeError("std::bad_cast")),
    (inspection, "header_of", CONTRACT_TARGET, zlib.error("Error -3 while decompressing data: invalid distance too far back")),
    (loader, "read_into_src", CONTRACT_TARGET, RuntimeError("std::bad_cast")),
    (loader, "check_columns", CONTRACT_TARGET, KeyError("PROCODE")),
    (loader, "build_checked_sql", CONTRACT_TARGET, ValueError("bad rule")),
    (writing, "_insert_raw", CONTRACT_TARGET, duckdb.ConstraintException("Constraint Error: /srv/x/apc.csv")),
    (writing, "_record_months", CONTRACT_TARGET, duckdb.InternalException("INTERNAL Error: oops")),
    (writing, "_insert_quarantine", CONTRACT_TARGET, MemoryError()),
    (writing, "supersede", CONTRACT_TARGET, TypeError("unexpected")),
    (writing, "_record", CONTRACT_TARGET, duckdb.IOException("IO Error: disk full")),
    (published, "detect_published", AE_NAME, zlib.error("Error -3 while decompressing data")),
    (published, "read_published", AE_NAME, KeyError("att_booked_type1")),
    (loader, "_insert_published_rows", AE_NAME, RuntimeError("std::bad_cast")),
]


def hostile_stage_landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    write_csv(landing / CONTRACT_TARGET, APC_HEADER, apc_row("RXH", "S1", VALID_NHS), apc_row("RXH", "S2"))
    write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER, apc_row("RXK", "K1", VALID_NHS))
    write_csv(landing / "orgs_all.csv", "ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
              "E06000043,HWB,Brighton and Hove,QNX")
    shutil.copy(AE_SOURCE, landing / AE_NAME)
    return landing


@pytest.mark.parametrize(("module", "function", "target", "error"), STAGES,
                         ids=[f"{f}-{type(e).__name__}" for _, f, _, e in STAGES])
def test_each_stage_failing_rejects_only_its_file(con, tmp_path, monkeypatch, module, function, target, error):
    landing = hostile_stage_landing(tmp_path)
    # no file judged in a batch, so each stage runs inside the file's own load (the batch's own
    # failures are the next test's)
    monkeypatch.setattr(judging, "_judge_batch", lambda con, items, pseudo_key: None)
    current: list[str] = []
    for name in ("inspect", "load_file"):    # which file the loader is working on
        original = getattr(loader, name)

        def tracking(con, item, *args, _original=original, **kwargs):
            current[:] = [Path(getattr(item, "path", item)).name]
            return _original(con, item, *args, **kwargs)
        monkeypatch.setattr(loader, name, tracking)
    real = getattr(module, function)

    def failing(*args, **kwargs):
        # the target's own step, whether the loader is inspecting it or hashing it (files are
        # hashed on threads before they are inspected, so a path argument names the file)
        if current == [target] or any(isinstance(a, Path) and a.name == target for a in args):
            raise error
        return real(*args, **kwargs)
    monkeypatch.setattr(module, function, failing)

    load(con, landing)
    rows = log(con)
    assert set(rows) == {CONTRACT_TARGET, "apc_RXK_2025-10.csv", "orgs_all.csv", AE_NAME}
    status, rows_in, loaded, quarantined, reason = rows[target]
    assert status == "rejected" and loaded == 0 and rows_in == loaded + quarantined
    words = {"PermissionError": "permission denied", "error": "gzip", "RuntimeError": "as text",
             "MemoryError": "memory"}.get(type(error).__name__, type(error).__name__)
    if isinstance(error, duckdb.Error):      # DuckDB's own first line names the kind of error
        words = str(error).split(":")[0]
    assert target in reason and words in reason, reason
    assert str(tmp_path) not in reason and "/srv/" not in reason and "Traceback" not in reason
    for other in set(rows) - {target}:
        assert rows[other][0] == "loaded", (other, rows[other])
    assert con.execute("select count(*) from raw_apc").fetchone()[0] == (1 if target == CONTRACT_TARGET else 3)
    assert leaks(con) == []


def test_a_damaged_gzip_stream_rejects_that_file_and_the_rest_load(con, tmp_path):
    import gzip
    landing = tmp_path / "landing"
    landing.mkdir()
    text = APC_HEADER + "\n" + "".join(apc_row("RXH", f"S{i * 7919 % 100003}", diag=f"I{i % 97:02d}") + "\n"
                                       for i in range(5000))
    data = gzip.compress(text.encode())
    broken = bytearray(data)
    broken[len(broken) * 3 // 5:len(broken) * 3 // 5 + 64] = bytes(range(64))   # a damaged deflate stream
    (landing / "apc_RXH_2025-10.csv.gz").write_bytes(bytes(broken))
    (landing / "download.csv.gz").write_bytes(bytes(broken))         # no contract name: sniffed
    (landing / "apc_RXJ_2025-10.csv.gz").write_bytes(data[: len(data) // 3])   # cut short
    ae = bytearray(gzip.compress(AE_SOURCE.read_bytes()))
    ae[len(ae) * 3 // 5:len(ae) * 3 // 5 + 64] = bytes(range(64))   # its header still reads
    (landing / "ae_2025-10.csv.gz").write_bytes(bytes(ae))
    write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER, apc_row("RXK", "K1"))
    load(con, landing)
    rows = log(con)
    assert rows["apc_RXK_2025-10.csv"][0] == "loaded"
    for name in ("apc_RXH_2025-10.csv.gz", "download.csv.gz", "apc_RXJ_2025-10.csv.gz", "ae_2025-10.csv.gz"):
        assert rows[name][0] == "rejected", rows[name]
        assert rows[name][1] == rows[name][2] + rows[name][3]
        assert "gzip" in rows[name][4] and name in rows[name][4], rows[name]


# ---------------------------------------------------------------- NHS numbers planted everywhere


def test_numbers_planted_in_every_field_a_sender_controls_are_never_stored(con, tmp_path):
    landing = tmp_path / "landing"
    seps = ["943 476 5919", "943  476  5919", "943\t476\t5919", "943 - 476 - 5919", "943.476.5919",
            "9434765919", "943-476-5919", "9434765918"]
    rows = [f"RXH,{s},{s},{s},{s},{s},{s},{s},{s},{s},{s},{s}" for s in seps]
    rows += [f'RXH,"P {s}",,70,1,E06000043,2025-10-03,21,,,,"I50; {s}"' for s in seps]
    write_csv(landing / "apc_RXH_2025-10_943 476 5919.csv", APC_HEADER, *rows)
    write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER.replace("NEWNHSNO", "PSEUDO_ID"),
              *[apc_row("RXK", f"K{i}", s) for i, s in enumerate(seps)])
    write_csv(landing / "orgs_all_943.476.5919.csv", "ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
              *[f'{s},HWB,"Ward {s}",{s}' for s in seps], 'RXH,PROVIDER,"Dr 943 476 5919 Practice",QNX')
    write_csv(landing / "plan_E06000043_2025-26.csv", "AREA_CODE,METRIC_ID,PERIOD,PLAN_VALUE",
              *[f"{s},{s},{s},{s}" for s in seps], "E06000043,emergency_admissions,2025-10,9434765919")
    write_csv(landing / "population_ONS_2024.csv", "AREA_CODE,YEAR,SEX,AGE,POPULATION",
              "E06000043,2024,1,70,1234567890", f"{seps[0]},2024,1,70,5")
    write_csv(landing / f"{seps[1]}.csv", "A,B", f"{seps[2]},x")
    write_csv(landing / "apc_9434765919_2025-10.csv", APC_HEADER, apc_row("RXH", "Z1"))
    write_csv(landing / "download.csv", f"{seps[0]},{seps[3]}", f"{seps[4]},1")
    ae = AE_SOURCE.read_text(encoding="utf-8-sig").splitlines()
    ae[1] = re.sub(r"^([^,]*,[^,]*,[^,]*,)[^,]*", r"\g<1>Ward 943 476 5919", ae[1])
    (landing / "AE Oct 943 476 5919.csv").write_text("\n".join(ae) + "\n")
    summary = load(con, landing)
    assert leaks(con) == []
    assert not any(LEAK.search(r.file_name + (r.reason or "")) for r in summary.results)
    rows = log(con)
    assert all(r[1] == r[2] + r[3] for r in rows.values())
    assert rows[f"apc_RXH_2025-10_{identifiers.WITHHELD}.csv"][0] == "loaded"
    # the free-text spell number and diagnosis load with the run withheld (the key pseudonymised)
    assert con.execute("select count(*) from raw_apc where diag_4_01 like 'I50; <10-digit%'").fetchone()[0] == len(seps)
    assert con.execute("select count(*) from raw_orgs where org_name = 'Dr <10-digit number withheld> Practice'"
                       ).fetchone()[0] == 1
    assert con.execute("select count(*) from raw_nhse_ae where org_name like 'Ward <10-digit%'").fetchone()[0] == 1


# ---------------------------------------------------------------- folder contents


def test_links_are_rejected_and_folders_fifos_and_hidden_files_are_skipped_and_counted(con, tmp_path):
    landing = tmp_path / "landing"
    outside = write_csv(tmp_path / "secret" / "apc_RXS_2025-10.csv", APC_HEADER, apc_row("RXS", "S1"))
    inside = write_csv(landing / "apc_RXK_2025-10.csv", APC_HEADER, apc_row("RXK", "K1"))
    (landing / "apc_RXO_2025-10.csv").symlink_to(outside)
    (landing / "apc_RXI_2025-10_copy.csv").symlink_to(inside.name)
    (landing / "apc_RXD_2025-10.csv").symlink_to(tmp_path / "nowhere.csv")     # dangling
    (landing / "archive").mkdir()
    write_csv(landing / "archive" / "apc_RXA_2025-10.csv", APC_HEADER, apc_row("RXA", "A1"))
    os.mkfifo(landing / "apc_RXF_2025-10.csv")
    write_csv(landing / ".~lock.apc_RXK_2025-10.csv#", "x")
    write_csv(landing / ".hidden.csv", APC_HEADER, apc_row("RXH", "H1"))
    (landing / "apc_RXE_2025-10.csv").write_bytes(b"")
    summary = load(con, landing)
    rows = log(con)
    assert set(rows) == {"apc_RXK_2025-10.csv", "apc_RXO_2025-10.csv", "apc_RXI_2025-10_copy.csv",
                         "apc_RXD_2025-10.csv", "apc_RXE_2025-10.csv"}
    for link in ("apc_RXO_2025-10.csv", "apc_RXI_2025-10_copy.csv", "apc_RXD_2025-10.csv"):
        assert rows[link][:4] == ("rejected", 0, 0, 0) and "symbolic link" in rows[link][4]
    assert "outside the landing folder" in rows["apc_RXO_2025-10.csv"][4]
    assert "empty" in rows["apc_RXE_2025-10.csv"][4]
    assert con.execute("select procode from raw_apc").fetchall() == [("RXK",)]
    assert summary.skipped == {"folder": ["archive"], "special": ["apc_RXF_2025-10.csv"],
                               "hidden": [".hidden.csv", ".~lock.apc_RXK_2025-10.csv#"]}
    line = skipped_summary(summary)
    assert "2 hidden files" in line and "1 sub-folder" in line and "1 FIFO" in line
    load(con, landing)                    # a second run: nothing new, the links not again
    assert len(log(con)) == 5


# ---------------------------------------------------------------- rules the contract implies


def test_a_plan_row_for_a_metric_joinedup_does_not_have_is_quarantined(con, tmp_path, monkeypatch):
    sql = tmp_path / "sql"
    shutil.copytree(flows.SQL_DIR, sql)
    text = (sql / "metrics" / "long_stay_21plus.sql").read_text()
    (sql / "metrics" / "local_metric.sql").write_text(
        text.replace("metric_id: long_stay_21plus", "metric_id: local_metric")
            .replace("model: long_stay_21plus", "model: local_metric"))
    monkeypatch.setattr(flows, "SQL_DIR", sql)
    landing = tmp_path / "landing"
    write_csv(landing / "plan_E06000043_2025-26.csv", "AREA_CODE,METRIC_ID,PERIOD,PLAN_VALUE",
              "E06000043,emergency_admissions,2025-10,10", "E06000043,no_such_metric,2025-10,10",
              "E06000043,local_metric,2025-10,10", "E06000043,Emergency_Admissions,2025-10,10")
    load(con, landing)
    assert log(con)["plan_E06000043_2025-26.csv"][:4] == ("loaded", 4, 2, 2)
    quarantined = con.execute("select line_number, rule, detail from quarantine order by 1").fetchall()
    assert [(line, rule) for line, rule, _ in quarantined] == [(2, "unknown_metric"), (4, "unknown_metric")]
    assert "no_such_metric" in quarantined[0][2]
    assert sorted(r[0] for r in con.execute("select metric_id from raw_plan").fetchall()) == [
        "emergency_admissions", "local_metric"]


def test_a_parquet_file_may_use_any_column_name_including_joinedups_own(con, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    con.execute(f"""copy (select 'RXH' as PROCODE, 'P' || i as PROVSPNO, 70 as STARTAGE, '1' as SEX,
        'E06000043' as RESLADST_ONS, date '2025-10-01' as ADMIDATE, '21' as ADMIMETH, 'I50' as DIAG_4_01,
        999 as file_row_number, 'x' as line_number, 7 as file_id, 'r' as rule, 'd' as detail, 'c1' as c1,
        'p' as person_id, 'ps' || i as PSEUDO_ID from range(1, 2001) t(i) order by i)
        to '{landing}/apc_RXH_2025-10.parquet' (format parquet, row_group_size 500)""")
    write_csv(landing / "apc_RXK_2025-10.csv", "line_number,file_id,c2," + APC_HEADER + ",rule",
              "x,y,z," + apc_row("RXK", "K1") + ",r", "x,y,z," + apc_row("RXK", "K2") + ",r")
    load(con, landing)
    rows = log(con)
    assert rows["apc_RXH_2025-10.parquet"][:4] == ("loaded", 2000, 2000, 0)
    assert rows["apc_RXK_2025-10.csv"][:4] == ("loaded", 2, 2, 0)
    # lines numbered in file order, whatever the sender's own columns are called
    assert con.execute("select count(*) from raw_apc where procode = 'RXH' and provspno = 'P' || line_number"
                       ).fetchone()[0] == 2000
    assert con.execute("select person_id from raw_apc where provspno = 'P7'").fetchone()[0] == "ps7"


def test_a_name_with_glob_characters_reads_exactly_that_file(con, tmp_path):
    landing = tmp_path / "landing [2025] *"      # the folder's own name too
    write_csv(landing / "apc_RXH_2025-10_[1].csv", APC_HEADER, apc_row("RXH", "BRACKETS"))
    write_csv(landing / "apc_RXH_2025-10_1.csv", APC_HEADER, apc_row("RXH", "ONE"), apc_row("RXH", "TWO"))
    write_csv(landing / "apc_RXK_2025-10_*.csv", APC_HEADER, apc_row("RXK", "STAR"))
    write_csv(landing / "apc_RXK_2025-10_x.csv", APC_HEADER, apc_row("RXK", "X1"), apc_row("RXK", "X2"))
    write_csv(landing / "apc_RXJ_2025-10_it's {a,b} ?.csv", APC_HEADER, apc_row("RXJ", "ODD"))
    load(con, landing)
    rows = log(con)
    counts = {name: row[1:3] for name, row in rows.items()}     # (rows in, loaded) of each file
    assert counts == {"apc_RXH_2025-10_[1].csv": (1, 1), "apc_RXH_2025-10_1.csv": (2, 2),
                      "apc_RXK_2025-10_*.csv": (1, 1), "apc_RXK_2025-10_x.csv": (2, 2),
                      "apc_RXJ_2025-10_it's {a,b} ?.csv": (1, 1)}
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("joinedup-read-*/file*"))


@pytest.mark.parametrize("error", [RuntimeError("std::bad_cast"), duckdb.InternalException("INTERNAL Error: x"),
                                   MemoryError()], ids=lambda e: type(e).__name__)
def test_a_batch_that_cannot_be_judged_falls_back_to_one_file_at_a_time(con, tmp_path, monkeypatch, error):
    """Judging consecutive files in one query only saves time: when it fails, in any way, each
    file is judged on its own and every file still loads."""
    landing = hostile_stage_landing(tmp_path)
    real = judging.build_checked_sql
    batched_calls = []

    def failing_when_batched(*args, **kwargs):
        if kwargs.get("batched"):
            batched_calls.append(1)
            raise error
        return real(*args, **kwargs)
    monkeypatch.setattr(judging, "build_checked_sql", failing_when_batched)

    load(con, landing)
    rows = log(con)
    assert batched_calls, "the two apc files should have been judged as one batch first"
    assert rows[CONTRACT_TARGET][0] == "loaded" and rows["apc_RXK_2025-10.csv"][0] == "loaded"
    assert all(r[1] == r[2] + r[3] for r in rows.values())
