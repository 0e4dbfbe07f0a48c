"""A hostile landing folder, end to end through the real command line.

More than forty cases a data team really receives (damaged containers, odd encodings, names
that are not plain text, broken quoting and headers, hostile values, reference files and folder
contents) sit beside good files. `joinedup backfill` must load the good ones, reject or
quarantine the rest with a reason, keep rows_in = rows_loaded + rows_quarantined for every file,
print no traceback, and store, log or print no run of digits that could be an NHS number.
"""
from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, TEST_DATA, write_csv

ICB, HWB = "E54000057", "E08000003"
APC_HEADER = "PROCODE,PROVSPNO,NEWNHSNO,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,DISMETH,DISDEST,DIAG_4_01"
NHS = "9434765919"          # valid (modulus 11)
NHS_FORMS = ["943 476 5919", "943  476  5919", "943\t476\t5919", "943 - 476 - 5919", "943.476.5919",
             "943-476-5919", "9434765919", "4010232137"]
# An independent scanner: ten or more digits with any whitespace, dashes or dots between them.
LEAK = re.compile(r"\d(?:[\s.\-\u2010-\u2015\u2212\u00a0]*\d){9,}")


def apc(procode: str, spell: str, nhs: str = NHS, age: str = "70", diag: str = "I50") -> str:
    return f"{procode},{spell},{nhs},{age},1,{HWB},2025-10-03,21,2025-10-05,1,19,{diag}"


def good_apc(procode: str, rows: int = 3) -> bytes:
    return ("\n".join([APC_HEADER] + [apc(procode, f"S{i}") for i in range(rows)]) + "\n").encode()


def corpus(landing: Path, outside: Path) -> int:
    """Write the corpus; returns how many entries should each have a row in load_log."""
    rng = random.Random(11)
    files: dict[bytes | str, bytes] = {}
    # ---- good files, so the run has something to build
    files["orgs_all.csv"] = ("ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE\n"
                             f"{ICB},ICB,NHS Greater Manchester ICB,\n{HWB},HWB,Manchester,{ICB}\n"
                             f"RXH,PROVIDER,Good Hospital,{ICB}\n").encode()
    files["population_ONS_2024.csv"] = ("AREA_CODE,YEAR,SEX,AGE,POPULATION\n"
                                        f"{HWB},2024,1,30,600\n{HWB},2024,2,70,400\n").encode()
    files["apc_RXH_2025-10.csv"] = good_apc("RXH")
    shutil.copy(TEST_DATA / "nhse-ae-monthly-2025-26" / "2025-10.csv", landing / "AE October.csv")
    # ---- damaged containers
    whole = gzip.compress(good_apc("RXA", 4000))
    files["apc_RXA_2025-10.csv.gz"] = whole[: len(whole) // 2]                            # truncated
    damaged = bytearray(gzip.compress(good_apc("RXB", 4000)))
    damaged[len(damaged) * 3 // 5:len(damaged) * 3 // 5 + 64] = bytes(range(64))
    files["apc_RXB_2025-10.csv.gz"] = bytes(damaged)                                    # corrupt deflate
    files["apc_RXC_2025-10.csv.gz"] = gzip.compress(rng.randbytes(20000))               # gzip of garbage
    files["apc_RXD_2025-10.csv.gz"] = good_apc("RXD")                                   # not gzip at all
    files["ae_download.csv.gz"] = bytes(damaged)                                        # damaged, no contract name
    con = duckdb.connect()
    parquet = landing / "apc_RXE_2025-10.parquet"
    con.execute(f"copy (select 'RXE' as PROCODE, 'S' || i as PROVSPNO, '{NHS}' as NEWNHSNO, 70 as STARTAGE,"
                f" '1' as SEX, '{HWB}' as RESLADST_ONS, date '2025-10-03' as ADMIDATE, '21' as ADMIMETH,"
                f" 'I50' as DIAG_4_01 from range(5000) t(i)) to '{parquet}' (format parquet)")
    files["apc_RXE_2025-10.parquet"] = parquet.read_bytes()[: parquet.stat().st_size // 2]  # truncated
    wrong_types = landing / "apc_RXF_2025-10.parquet"
    con.execute(f"copy (select 'RXF' as PROCODE, [1, 2] as PROVSPNO, {{'a': 1}} as NEWNHSNO, 'old' as STARTAGE,"
                f" 1.5 as SEX, 42 as RESLADST_ONS, 20251003 as ADMIDATE, true as ADMIMETH,"
                f" blob '\\x00\\xff' as DIAG_4_01, {NHS} as PSEUDO_ID) to '{wrong_types}' (format parquet)")
    files["apc_RXF_2025-10.parquet"] = wrong_types.read_bytes()                         # wrong types
    files["apc_RXG_2025-10.parquet"] = rng.randbytes(3000)                              # not parquet
    files["apc_RXZ_2025-10.csv"] = b"PK\x03\x04" + rng.randbytes(500)                   # a zip as csv
    # ---- encodings
    text = good_apc("RXI").decode().replace("I50", "Café")
    files["apc_RXI_2025-10.csv"] = text.encode("utf-16")                                # UTF-16 with BOM
    files["apc_RXJ_2025-10.csv"] = text.encode("cp1252")                                # cp1252
    files["apc_RXK_2025-10.csv"] = b"\xef\xbb\xbf" + good_apc("RXK")                    # UTF-8 BOM
    files["apc_RXL_2025-10.csv"] = good_apc("RXL").replace(b",I50\n", b",I5\x000\n", 1)  # NUL in a row
    files["apc_RXM_2025-10.csv"] = good_apc("RXM").replace(b"PROCODE", b"PRO\x00CODE")  # NUL in header
    files["apc_RXN_2025-10.csv"] = good_apc("RXN").replace(b"\n", b"\r")                # old Mac endings
    # ---- names
    files[b"apc_RXH_2025-10_\xff\xfe.csv"] = good_apc("RXH", 7)
    files[b"apc_RXH_2025-10_\x1b[31m\x07.csv"] = good_apc("RXH", 8)
    files["apc_RXH_2025-10_" + "v" * 220 + ".csv"] = good_apc("RXH", 2)
    files["apc_RXH_2025-10_943 476 5919.csv"] = good_apc("RXH", 1)
    files["apc_RXH_2025-10_final copy (2).csv"] = good_apc("RXH", 4)
    files["apc_RXH_2025-10_Ωmega_été.csv"] = good_apc("RXH", 5)
    files["apc_9434765919_2025-10.csv"] = good_apc("RXH", 6)
    files["9434765919.csv"] = b"a,b\n1,2\n"
    files["report.xlsx"] = b"PK\x03\x04" + rng.randbytes(100)
    # ---- quoting
    files["apc_RXO_2025-10.csv"] = good_apc("RXO") + b'RXO,Q1,,70,1,' + HWB.encode() + b',2025-10-03,21,,,,"I50\n'
    files["apc_RXP_2025-10.csv"] = (good_apc("RXP") + b'RXP,Q2,,70,1,' + HWB.encode()
                                    + b',2025-10-03,21,,,,"I50\nsecond line"\n')
    files["apc_RXQ_2025-10.csv"] = good_apc("RXQ") + b'RXQ,Q"3,,70,1,' + HWB.encode() + b',2025-10-03,21,,,,I50\n'
    # ---- headers
    files["apc_RXR_2025-10.csv"] = good_apc("RXR").replace(b"DIAG_4_01", b"DIAG_4_01,procode", 1)
    files["apc_RXS_2025-10.csv"] = good_apc("RXS").replace(b"ADMIDATE,", b"", 1)
    files["apc_RXT_2025-10.csv"] = b"\n" + good_apc("RXT")
    files["apc_RXU_2025-10.csv"] = good_apc("RXU").replace(b"DIAG_4_01\n", b"DIAG_4_01,,, stray \n", 1)
    files["apc_RXV_2025-10.csv"] = APC_HEADER.encode() + b"\n"
    files["apc_RXW_2025-10.csv"] = good_apc("RXW").replace(b"PROCODE,PROVSPNO", b" procode , Provspno ", 1)
    # ---- values
    files["apc_RXX_2025-10.csv"] = "\n".join([APC_HEADER,
        apc("RXX", "V1", age="99999999999999999999"), apc("RXX", "V2", age="-5"),
        apc("RXX", "V3", diag="=HYPERLINK(\"http://x\")"), apc("RXX", "V4", diag="+cmd|' /C calc'!A0"),
        apc("RXX", "V5", diag="@SUM(A1)"), apc("RXX", "V6", diag="x" * 100_000),
        apc("RXX", "V7", age="1e3"), apc("RXX", "V8", age="1234567890"),
        apc("RXX", "V9", nhs="not a number"), apc("RXX", "V10", diag="I50,extra,fields"),
        "RXX,V11"]).encode() + b"\n"
    files["apc_RXY_2025-10.csv"] = "\n".join(
        [APC_HEADER.replace("NEWNHSNO", "PSEUDO_ID")]
        + [apc("RXY", f'"W {s}"', nhs=f'"{s}"', diag=f'"Note; NHS no {s}"') for s in NHS_FORMS]
        + [apc("RXY", f'"{s}"', nhs="p1", age=f'"{s}"') for s in NHS_FORMS]).encode() + b"\n"
    # ---- reference files
    files["orgs_extra_2025.csv"] = "\n".join([
        "ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
        f'RXH,PROVIDER,"=HYPERLINK(""http://evil"")",{ICB}', f"RYY,PROVIDER,Dr {NHS_FORMS[3]} Practice,{ICB}",
        f"{NHS},PROVIDER,Number as code,{ICB}", f"RZZ,PROVIDER,Tab\there,{NHS_FORMS[2]}"]).encode() + b"\n"
    files["plan_E08000003_2025-26.csv"] = "\n".join([
        "AREA_CODE,METRIC_ID,PERIOD,PLAN_VALUE", f"{HWB},emergency_admissions,2025-10,100",
        f"{HWB},no_such_metric,2025-10,100", f"{HWB},emergency_admissions,2025-11,{NHS}",
        f"{HWB},{NHS_FORMS[0]},2025-10,1"]).encode() + b"\n"
    files["population_ONS_2023.csv"] = "\n".join([
        "AREA_CODE,YEAR,SEX,AGE,POPULATION", f"{HWB},2023,1,30,1234567890", f"{HWB},2023,1,31,-4",
        f"{NHS_FORMS[4]},2023,1,32,5"]).encode() + b"\n"
    # ---- folder contents
    files["apc_RXH_2025-10_empty.csv"] = b""
    files["apc_RXH_2025-10_empty.parquet"] = b""
    for name, data in files.items():
        raw = name if isinstance(name, bytes) else name.encode()
        with open(os.path.join(os.fsencode(landing), raw), "wb") as handle:
            handle.write(data)
    secret = write_csv(outside / "apc_RXS_2025-11.csv", APC_HEADER, apc("RXS", "SECRET"))
    (landing / "apc_RXS_2025-11.csv").symlink_to(secret)                        # a link out
    (landing / "apc_RXH_2025-10_link.csv").symlink_to("apc_RXH_2025-10.csv")    # a link in
    (landing / "archive").mkdir()                                               # a sub-folder
    write_csv(landing / "archive" / "apc_RXH_2025-10.csv", APC_HEADER, apc("RXH", "OLD"))
    os.mkfifo(landing / "apc_RXF_2025-11.csv")                                  # a FIFO
    (landing / ".apc_RXH_2025-10.csv.swp").write_bytes(good_apc("RXH"))         # hidden
    return len(files) + 1 + 2          # + the A&E copy + the two links


@pytest.mark.e2e
def test_a_hostile_landing_folder_runs_end_to_end_and_nothing_escapes(tmp_path):
    landing, outside = tmp_path / "landing", tmp_path / "outside"
    landing.mkdir()
    outside.mkdir()
    expected_files = corpus(landing, outside)
    assert expected_files >= 40
    db = tmp_path / "j.duckdb"
    env = {**os.environ, "JOINEDUP_PSEUDO_KEY": "hostile-test-key", "JOINEDUP_ORCHESTRATION": "direct",
           "COLUMNS": "200"}
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "flows.cli", "backfill", "--from", "2025-10", "--to", "2025-10",
               "--landing", str(landing), "--db", str(db), "--reports", str(tmp_path / "reports")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    output = run.stdout + run.stderr
    again = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=ROOT)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert "(no new files)" in again.stdout + again.stderr       # nothing is recorded twice
    assert "Traceback" not in output, output
    assert run.returncode == 0, output
    assert not LEAK.search(output), LEAK.search(output)
    assert "Skipped in the landing folder" in output and "1 hidden file" in output
    assert "1 sub-folder" in output and "1 FIFO" in output

    con = duckdb.connect(str(db), read_only=True)
    log = con.execute("select file_name, status, rows_in, rows_loaded, rows_quarantined, reason "
                      "from load_log").fetchall()
    assert len(log) == expected_files
    for name, status, rows_in, loaded, quarantined, reason in log:
        assert rows_in == loaded + quarantined, name
        assert status in ("loaded", "superseded", "rejected", "duplicate"), name
        assert status != "rejected" or (loaded == 0 and reason), name
        assert str(tmp_path) not in (reason or ""), reason
    by_name = {r[0]: r[1:] for r in log}
    assert by_name["apc_RXH_2025-10.csv"][:3] == ("superseded", 3, 3)   # by its resubmissions
    assert by_name["AE October.csv"][0] == "loaded"
    for damaged in ("apc_RXA_2025-10.csv.gz", "apc_RXB_2025-10.csv.gz", "apc_RXC_2025-10.csv.gz",
                    "apc_RXE_2025-10.parquet", "apc_RXG_2025-10.parquet", "apc_RXS_2025-11.csv",
                    "apc_RXH_2025-10_link.csv", "apc_RXH_2025-10_\\xff\\xfe.csv"):
        assert by_name[damaged][0] == "rejected", (damaged, by_name[damaged])
    assert con.execute("select count(*) from raw_apc where provspno = 'SECRET' or provspno = 'OLD'").fetchone()[0] == 0
    assert con.execute("select count(*) from quarantine where rule = 'unknown_metric'").fetchone()[0] == 2
    assert con.execute("select count(*) from metric_values").fetchone()[0] > 0

    texts = []
    for schema, table, column in con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON') or data_type like 'VARCHAR[%'").fetchall():
        texts += [(f"{table}.{column}", v) for (v,) in con.execute(
            f'select distinct "{column}"::varchar from "{schema}"."{table}"').fetchall() if v]
    assert texts and [(where, v) for where, v in texts if LEAK.search(v)] == []
    con.close()
    # Reports hold chart coordinates (long runs of digits and dots): look for the planted numbers
    planted = {re.sub(r"\D", "", s) for s in NHS_FORMS}
    for path in (tmp_path / "reports").rglob("*"):
        if path.is_file() and path.suffix in (".html", ".csv", ".json"):
            digits = re.sub(r"[\s.\-]", "", path.read_text(errors="replace"))
            assert not any(number in digits for number in planted), path
