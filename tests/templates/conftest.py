"""Fixtures for the report tests: a tiny database (report_db.py) and its rendered reports."""
from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import report_db  # noqa: E402

from flows.publish.report import render_reports  # noqa: E402

REPORT_MONTHS = [date(2025, 10, 1), date(2025, 11, 1)]


@pytest.fixture(scope="session")
def report_db_path(tmp_path_factory) -> Path:
    return report_db.build(tmp_path_factory.mktemp("db") / "report.duckdb")


@pytest.fixture()
def report_con(report_db_path, tmp_path):
    """A private copy of the database, so a test may change it."""
    copy = tmp_path / "report.duckdb"
    copy.write_bytes(report_db_path.read_bytes())
    con = duckdb.connect(str(copy))
    yield con
    con.close()


@pytest.fixture(scope="session")
def rendered(report_db_path, tmp_path_factory) -> Path:
    """The reports of the last two months, rendered once for the session (read-only)."""
    reports = tmp_path_factory.mktemp("reports")
    con = duckdb.connect(str(report_db_path), read_only=True)
    try:
        render_reports(con, reports, REPORT_MONTHS)
    finally:
        con.close()
    return reports


def pytest_collection_modifyitems(config, items):
    """The report benchmark takes a minute: run it only when asked for (`-m benchmark`)."""
    if "benchmark" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="benchmark: run with -m benchmark")
    for item in items:
        if item.get_closest_marker("benchmark") and str(item.path).startswith(str(Path(__file__).parent)):
            item.add_marker(skip)
