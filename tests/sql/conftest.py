"""Helpers for the metric model tests: a tiny landing folder written by hand, built end to end.

Two HWBs in one ICB, with populations small enough to do the sums in your head:

    HWB_A (Manchester)  all ages 1,000   65+ 200   -> one admission = 100 per 100k (500 if 65+)
    HWB_B (Salford)     all ages 2,000   65+ 500   -> one admission =  50 per 100k (200 if 65+)
    ICB = England       all ages 3,000   65+ 700
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.db import connect
from flows.ingest.loader import load_landing
from flows.models.runner import (
    Project,
    build_months,
    load_project,
    loaded_months,
    plan_months,
    write_catalog,
)

ICB = "E54000057"
HWB_A = "E08000003"
HWB_B = "E08000006"
ENGLAND = "E92000001"
OUTSIDE = "E06000043"     # a real HWB code, but not one of the HWBs in orgs: counts nowhere
UNKNOWN = "X99999999"     # residence unknown: counts nowhere

ORGS = ("ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
        f"{ICB},ICB,NHS Greater Manchester Integrated Care Board,",
        f"{HWB_A},HWB,Manchester,{ICB}",
        f"{HWB_B},HWB,Salford,{ICB}",
        f"R0A,PROVIDER,Manchester University NHS Foundation Trust,{ICB}",
        f"RM3,PROVIDER,Northern Care Alliance NHS Foundation Trust,{ICB}")

POPULATION = ("AREA_CODE,YEAR,SEX,AGE,POPULATION",
              f"{HWB_A},2024,1,30,600",
              f"{HWB_A},2024,2,64,200",
              f"{HWB_A},2024,1,65,100",
              f"{HWB_A},2024,2,90,100",
              f"{HWB_B},2024,1,10,1500",
              f"{HWB_B},2024,2,70,500")

APC_HEADER = ("PROCODE,PROVSPNO,PSEUDO_ID,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,"
              "DISMETH,DISDEST,DISCHARGE_READY_DATE,DIAG_4_01,DIAG_4_02,DIAG_4_03")
CAREHOME_HEADER = "LA_CODE,CLIENT_ID,PSEUDO_ID,AGE,ADMISSION_DATE,SETTING,PERMANENT,FUNDING"
REABLEMENT_HEADER = "LA_CODE,CLIENT_ID,PSEUDO_ID,AGE,HOSP_DISCHARGE_DATE,SERVICE_START_DATE,STATUS_91D"


def write_csv(path: Path, header: str, *rows: str) -> Path:
    """Write a small CSV extract from a header line and row lines, as a sender would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join((header,) + rows) + "\n")
    return path


def write_reference(landing: Path) -> Path:
    """The org tree and the population every test shares."""
    write_csv(landing / "orgs_all.csv", *ORGS)
    write_csv(landing / "population_ONS_2024.csv", *POPULATION)
    return landing


def build(con, landing: Path, *metrics: str):
    """Load what is new in the landing folder and rebuild the stale months, as a run does; given
    metric ids, build only those metrics (with every view and table, and the audits)."""
    summary = load_landing(con, landing, pseudo_key=None)
    project = only_metrics(load_project(), metrics) if metrics else load_project()
    write_catalog(con, project)
    build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="t")
    return summary


def only_metrics(project: Project, metric_ids: tuple[str, ...]) -> Project:
    """The project without the metrics not asked for: writing a metric's cells is most of a
    month's build, and the catalogue (so the audits, and the statuses) then lists only these."""
    unknown = set(metric_ids) - {m.header["metric_id"] for m in project.metrics}
    assert not unknown, f"no such metric: {sorted(unknown)}"
    models = {name: model for name, model in project.models.items()
              if model.kind != "metric" or model.header["metric_id"] in metric_ids}
    return Project(models, project.audits, project.sql_dir)


def cells(con, metric_id: str, month: str) -> dict[str, tuple]:
    """{area_code: (numerator, denominator, value)} for one metric and month (YYYY-MM)."""
    first = date.fromisoformat(month + "-01")
    rows = con.execute("""select area_code, numerator, denominator, value from metric_values
                          where metric_id = ? and period_month = ?""", [metric_id, first]).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def statuses(con, metric_id: str, month: str) -> dict[str, str]:
    first = date.fromisoformat(month + "-01")
    return dict(con.execute("select area_code, status from metric_values "
                            "where metric_id = ? and period_month = ?", [metric_id, first]).fetchall())


def assert_cell(got: tuple, numerator: float, denominator: float | None, value: float | None) -> None:
    """A cell is exactly this numerator and denominator, and its value to 1e-9."""
    assert got[0] == numerator and got[1] == denominator, got
    if value is None:
        assert got[2] is None, got
    else:
        assert got[2] == pytest.approx(value, rel=1e-9), got


@pytest.fixture
def landing(tmp_path) -> Path:
    return write_reference(tmp_path / "landing")


@pytest.fixture
def con(tmp_path):
    con = connect(tmp_path / "t.duckdb")
    yield con
    con.close()
