"""Every model's declared grain holds: the columns its `grain:` header names are unique together
and never NULL, on a generated sample with NHS England's A&E files beside it.

This is the generic check of a grain (one check for every model, rather than an audit per table
whose primary key already forbids what it looks for). A `grain:` header is read as a list of
column names; words in brackets explain a column (`area_code (HWB of residence)`) and are not
part of the list. `month` and `metric` models are built one month at a time, so for them
`period_month` is the month being built rather than a column of their output.
"""
from __future__ import annotations

import gzip
import re
import shutil
from datetime import date
from pathlib import Path

import pytest

from flows.db import connect
from flows.ingest.loader import load_landing
from flows.models.runner import (
    Model,
    build_months,
    load_project,
    loaded_months,
    plan_months,
    write_catalog,
)
from tests.conftest import TEST_DATA

PROJECT = load_project()
# A `cells` model reads the temp table of the metric being built and writes metric_cells, whose
# primary key is its grain: it holds no rows of its own to check here.
GRAINED = sorted((m for m in PROJECT.models.values() if m.kind not in ("macro", "cells")),
                 key=lambda m: m.name)
PER_MONTH = ("month", "metric")
EXPLANATION = re.compile(r"\([^)]*\)")
COLUMN = re.compile(r"[a-z_][a-z0-9_]*")
KEY = "grain-test-key"
ONS_2020 = TEST_DATA / "ons-mye-la-age-2019-2020" / "ONS2020_PopnByAgeYearEstimate.csv"
CHANGES_AREA = "E06000052"
SITREP = TEST_DATA / "healthyr-nhse-discharge" / "england_trust_criteria_to_reside.csv.gz"

# Grains the SQL does not keep today, each with why: the test expects them to fail (strict, so
# a fix shows up), and the issue that owns the model decides whether the grain or the SQL is wrong.
KNOWN_EXCEPTIONS: dict[str, str] = {}


def grain_columns(model: Model) -> list[str]:
    """The header's grain as column names, without explanations and, for a model built one month
    at a time, without the month it is built for."""
    columns = [c.strip() for c in EXPLANATION.sub("", model.header.get("grain", "")).split(",")]
    return [c for c in columns if c and not (model.kind in PER_MONTH and c == "period_month")]


def test_every_model_declares_its_grain_as_a_list_of_columns():
    unparsed = {m.name: m.header.get("grain") for m in GRAINED
                if not grain_columns(m) or not all(COLUMN.fullmatch(c) for c in grain_columns(m))}
    assert unparsed == {}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Two generated months of extracts, NHS England's A&E and discharge sitrep files and ONS's
    population estimates for April 2025, and a local changes file, loaded and built."""
    from sample.generate import generate_landing

    root = tmp_path_factory.mktemp("grains")
    landing = root / "landing"
    generate_landing(landing, seed=5, months=2, formats=False)
    shutil.copy(TEST_DATA / "nhse-ae-monthly-2025-26" / "2025-04.csv", landing / "ae.csv")
    shutil.copy(ONS_2020, landing / ONS_2020.name)
    write_month_of_sitrep(landing / "nctr.csv", "2025-04")
    (landing / f"changes_{CHANGES_AREA}.csv").write_text(
        "AREA_CODE,METRIC_ID,CHANGE_DATE,DESCRIPTION\n"
        f"{CHANGES_AREA},*,2025-04,Discharge to assess\n"
        f"{CHANGES_AREA},falls_admissions_65plus,2025-05,Falls team\n")
    con = connect(root / "j.duckdb")
    load_landing(con, landing, pseudo_key=KEY)
    write_catalog(con, PROJECT)
    build_months(con, PROJECT, plan_months(con, PROJECT, loaded_months(con)), run_id="grains")
    yield con
    con.close()


def write_month_of_sitrep(path: Path, month: str) -> None:
    """One month of the daily discharge sitrep (criteria to reside), as a one-month file."""
    lines = gzip.decompress((SITREP).read_bytes()).decode().splitlines()
    path.write_text("\n".join([lines[0]] + [line for line in lines[1:] if f",{month}-" in line]) + "\n")


def relations(con, model: Model) -> list[str]:
    """SQL of what the model holds: the relation itself, or, for a model built one
    month at a time, its query for each month loaded (after the month tables it reads)."""
    if model.kind not in PER_MONTH:
        return [f"select * from {model.name}"]
    out = []
    for month in loaded_months(con):
        for upstream in PROJECT.ordered(("month",)):
            con.execute(f"create or replace temp table {upstream.name} as {for_month(upstream.sql, month)}")
        out.append(for_month(model.sql, month))
    return out


def for_month(sql: str, month: date) -> str:
    """The model's SQL for one month: its period parameters as date literals."""
    return (sql.replace("$period_start", f"date '{month}'")
            .replace("$period_end", f"last_day(date '{month}')"))


def grain_breaches(con, sql: str, columns: list[str]) -> tuple[int, int, int]:
    """(rows, keys held by more than one row, rows with a NULL in the grain)."""
    key = ", ".join(columns)
    nulls = " or ".join(f"{c} is null" for c in columns)
    return con.execute(f"""
        with r as ({sql})
        select (select count(*) from r),
               (select count(*) from (select {key} from r group by {key} having count(*) > 1)),
               (select count(*) from r where {nulls})""").fetchone()


@pytest.mark.parametrize("model", [
    pytest.param(m, id=m.name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_EXCEPTIONS[m.name])]
                 if m.name in KNOWN_EXCEPTIONS else []) for m in GRAINED])
def test_the_declared_grain_is_unique_and_not_null(sample, model):
    columns = grain_columns(model)
    rows = 0
    for sql in relations(sample, model):
        found, repeated, nulls = grain_breaches(sample, sql, columns)
        assert repeated == 0, f"{model.name}: {repeated} values of ({', '.join(columns)}) repeat"
        assert nulls == 0, f"{model.name}: {nulls} rows with a NULL in ({', '.join(columns)})"
        rows += found
    assert rows > 0, f"{model.name} is empty on the sample: its grain was not tested"


def test_a_repeated_or_null_key_is_caught(sample):
    """The check itself: a relation that repeats a key, or has a NULL in one, fails it."""
    sample.execute("create or replace temp table twice as select * from (values ('a', 1), ('a', 1), (null, 2)) t(k, v)")
    assert grain_breaches(sample, "select * from twice", ["k"]) == (3, 1, 1)
    assert grain_breaches(sample, "select * from twice", ["k", "v"]) == (3, 1, 1)
    assert grain_breaches(sample, "select * from twice where k is not null", ["k"]) == (2, 1, 0)
