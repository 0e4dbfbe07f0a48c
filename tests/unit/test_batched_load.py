"""Judging many files in one query (judging._judge_batch) changes nothing: the database a
folder loads into, and the metrics built from it, are the same as with one file at a time."""
from __future__ import annotations

import pytest

from flows import schema
from flows.db import connect
from flows.errors import FileRejected
from flows.ingest import judging
from flows.ingest.inspection import LandingFile
from flows.ingest.landing import landing_files
from flows.ingest.loader import load_landing
from flows.ingest.naming import parse_file_name
from flows.models.runner import (
    build_months,
    load_project,
    loaded_months,
    plan_months,
    write_catalog,
)
from sample.generate import generate_landing

RESULTS = {
    "files": "select file_name, hex(sha256), dataset, org_code, period, identity, status, rows_in, "
             "rows_loaded, rows_quarantined, reason, invalid_nhs_numbers, missing_person_ids "
             "from files order by file_id",
    "quarantine": "select * from quarantine order by all",
    "raw_apc": "select * from raw_apc order by all",
    "raw_reablement": "select * from raw_reablement order by all",
    "raw_carehome": "select * from raw_carehome order by all",
    "raw_plan": "select * from raw_plan order by all",
    "file_months": "select * from file_months order by all",
    "metric_values": "select * from metric_values order by all",
}


def _load_and_build(landing, db) -> dict[str, list]:
    con = connect(db)
    summary = load_landing(con, landing, pseudo_key="test-key")
    schema.ensure(con)
    project = load_project()
    write_catalog(con, project)
    build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="t")
    results = {name: con.execute(sql).fetchall() for name, sql in RESULTS.items()}
    results["summary"] = [(r.file_name, r.status, r.rows_in, r.rows_loaded, r.rows_quarantined, r.reason)
                          for r in summary.results]
    con.close()
    return results


@pytest.fixture(scope="module")
def faulty_landing(tmp_path_factory):
    landing = tmp_path_factory.mktemp("batched") / "landing"
    generate_landing(landing, seed=11, months=4, faults=True)
    return landing


def test_batches_group_consecutive_files_of_one_dataset(faulty_landing):
    items = [LandingFile(p, b"", size=p.stat().st_size) for p in landing_files(faulty_landing)]
    for item in items:
        try:
            item.name = parse_file_name(item.path.name)
        except FileRejected:
            pass
    batches = judging.batches_of(items)
    assert [i for b in batches for i in b] == items            # the load order is kept
    assert max(len(b) for b in batches) > 1
    for batch in batches:
        assert len({i.name.dataset if i.name else None for i in batch}) == 1


def test_loading_in_batches_gives_the_same_database_and_metrics(faulty_landing, tmp_path, monkeypatch):
    batched = _load_and_build(faulty_landing, tmp_path / "batched.duckdb")
    monkeypatch.setattr(judging, "_judge_batch", lambda con, items, pseudo_key: None)
    one_by_one = _load_and_build(faulty_landing, tmp_path / "single.duckdb")
    # the faults are there: rejected files, quarantined rows and invalid NHS numbers
    statuses = {row[6] for row in batched["files"]}
    assert {"loaded", "rejected", "duplicate", "superseded"} <= statuses
    assert len(batched["quarantine"]) > 10
    assert any(row[11] for row in batched["files"])
    for name in batched:
        assert batched[name] == one_by_one[name], name


def test_a_batch_leaves_no_working_table_behind(faulty_landing, tmp_path):
    con = connect(tmp_path / "j.duckdb")
    load_landing(con, faulty_landing, pseudo_key="test-key")
    temp = {r[0] for r in con.execute("select table_name from duckdb_tables() where temporary").fetchall()}
    assert not temp & {"src", "src_rejects", "checked", *judging.BATCH_TABLES}


def test_files_written_together_are_duplicates_exactly_as_one_by_one(tmp_path, monkeypatch):
    """A batch's files commit together only when none can make another a duplicate: a byte copy
    is a duplicate, and so is a header-only file resent under its own identity, but header-only
    returns of two councils (the same bytes) are two deliveries."""
    landing = tmp_path / "landing"
    landing.mkdir()
    header = "LA_CODE,CLIENT_ID,AGE,HOSP_DISCHARGE_DATE,SERVICE_START_DATE,STATUS_91D,PSEUDO_ID\n"
    row = "E06000003,C1,80,2025-06-03,2025-06-04,,P1\n"
    for name, text in [("reablement_E06000001_2025-06.csv", header),
                       ("reablement_E06000002_2025-06.csv", header),
                       ("reablement_E06000002_2025-06_v2.csv", header),
                       ("reablement_E06000003_2025-06.csv", header + row),
                       ("reablement_E06000003_2025-06_v2.csv", header + row)]:
        (landing / name).write_text(text)
    batched = _load_and_build(landing, tmp_path / "batched.duckdb")
    monkeypatch.setattr(judging, "_judge_batch", lambda con, items, pseudo_key: None)
    one_by_one = _load_and_build(landing, tmp_path / "single.duckdb")
    assert [(r[0], r[6]) for r in batched["files"]] == [
        ("reablement_E06000001_2025-06.csv", "loaded"), ("reablement_E06000002_2025-06.csv", "loaded"),
        ("reablement_E06000002_2025-06_v2.csv", "duplicate"), ("reablement_E06000003_2025-06.csv", "loaded"),
        ("reablement_E06000003_2025-06_v2.csv", "duplicate")]
    assert batched == one_by_one
