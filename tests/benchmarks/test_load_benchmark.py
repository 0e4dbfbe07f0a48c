"""Benchmark: loading a 2-million-row apc extract against plain DuckDB read_csv of the same file.

Run with `make bench`. It prints the ratio; the goal is at most 1.5x. Not a timed test: it
asserts nothing about seconds, only that both paths read every row.
"""
from __future__ import annotations

import time

import duckdb
import pytest

from flows.db import connect
from flows.ingest.loader import load_landing

ROWS = 2_000_000


def write_big_apc(path, rows: int) -> None:
    """A realistic 2M-row extract made by DuckDB itself (seconds, not minutes)."""
    duckdb.execute(f"""
        copy (
            select 'RBIG' as PROCODE,
                   'SP' || lpad(i::varchar, 9, '0') as PROVSPNO,
                   -- valid NHS numbers: a 9-digit stem with its modulus-11 check digit
                   stem || (case when c = 11 then 0 else c end)::varchar as NEWNHSNO,
                   (i * 7919 % 100)::varchar as STARTAGE,
                   (1 + i % 2)::varchar as SEX,
                   case i % 3 when 0 then 'E08000003' when 1 then 'E08000009' else 'E08000007' end as RESLADST_ONS,
                   'P84001' as GPPRAC,
                   strftime(date '2025-10-01' + (i % 31)::integer, '%Y-%m-%d') as ADMIDATE,
                   case i % 4 when 0 then '11' when 1 then '21' when 2 then '2A' else '22' end as ADMIMETH,
                   '19' as ADMISORC, '1' as CLASSPAT,
                   case when i % 5 = 0 then '' else strftime(date '2025-10-01' + (i % 31)::integer, '%Y-%m-%d') end as DISDATE,
                   case when i % 5 = 0 then '' else '1' end as DISMETH,
                   case when i % 5 = 0 then '' else '19' end as DISDEST,
                   '' as DISCHARGE_READY_DATE,
                   'I500' as DIAG_4_01, 'W19X' as DIAG_4_02
            from (
                select i, stem,
                       11 - ((substr(stem,1,1)::int*10 + substr(stem,2,1)::int*9 + substr(stem,3,1)::int*8
                            + substr(stem,4,1)::int*7 + substr(stem,5,1)::int*6 + substr(stem,6,1)::int*5
                            + substr(stem,7,1)::int*4 + substr(stem,8,1)::int*3 + substr(stem,9,1)::int*2) % 11) as c
                from (select i, (400000000 + i % 900000)::varchar as stem from range({rows}) t(i))
            ) where c <> 10 or true
        ) to '{path}' (header, delimiter ',')
    """)


@pytest.mark.benchmark
def test_load_is_within_reach_of_plain_read_csv(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    extract = landing / "apc_RBIG_2025-10.csv"
    write_big_apc(extract, ROWS)

    baseline_con = duckdb.connect(str(tmp_path / "baseline.duckdb"))
    began = time.perf_counter()
    baseline_con.execute(f"create table t as select * from read_csv('{extract}')")
    baseline = time.perf_counter() - began
    assert baseline_con.execute("select count(*) from t").fetchone()[0] == ROWS

    con = connect(tmp_path / "joinedup.duckdb")
    began = time.perf_counter()
    summary = load_landing(con, landing, pseudo_key="benchmark-key")
    ours = time.perf_counter() - began
    (result,) = summary.results
    assert result.rows_in == ROWS == result.rows_loaded + result.rows_quarantined

    print(f"\nload benchmark: {ROWS:,} rows; read_csv {baseline:.2f}s; joinedup load {ours:.2f}s; "
          f"ratio {ours / baseline:.2f}x (goal <= 1.5x)")
