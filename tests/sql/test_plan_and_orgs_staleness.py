"""Staleness follows only what changes a numerator or denominator (A1).

A plan file changes no figure's numerator: its plan values show in metric_values at once (a
view joins them) and no month is rebuilt. An orgs file changes what the models that read the org
tree compute (the HWBs counted by residence read dim_hwb), so only those are rebuilt; a
provider-level measure reads only its provider rows, and its ICB, taken from orgs when the
figures are read, follows the new tree with no rebuild.
"""
from __future__ import annotations

import shutil
from datetime import date

from flows.ingest.loader import load_landing
from flows.models.runner import load_project, loaded_months, plan_months
from tests.conftest import TEST_DATA
from tests.sql.conftest import APC_HEADER, HWB_A, ICB, build, only_metrics, write_csv

APRIL = date(2025, 4, 1)
METRICS = ("emergency_admissions", "ae_attendances")
AE_APRIL = TEST_DATA / "nhse-ae-monthly-2025-26" / "2025-04.csv"
OTHER_ICB = "E54000099"     # an ICB with no HWB of ours


def stale_models(con, project) -> dict[date, set[str]]:
    return {p.month: set(p.models) for p in plan_months(con, project, loaded_months(con)) if p.stale}


def figure(con, area_code: str, metric_id: str, column: str = "numerator"):
    return con.execute(f"select {column} from metric_values where period_month = ? and area_code = ? "
                       "and metric_id = ?", [APRIL, area_code, metric_id]).fetchone()[0]


def built_april(con, landing):
    """April from one provider's apc file and NHS England's A&E file, both metrics built."""
    write_csv(landing / "apc_R0A_2025-04.csv", APC_HEADER,
              f"R0A,1,p1,70,1,{HWB_A},2025-04-05,21,2025-04-09,1,19,,I50,,")
    shutil.copy(AE_APRIL, landing / "ae.csv")
    build(con, landing, *METRICS)
    project = only_metrics(load_project(), METRICS)
    assert stale_models(con, project) == {}
    return project


def test_a_new_plan_file_makes_no_month_stale_and_its_plan_shows_at_once(con, landing):
    project = built_april(con, landing)
    assert figure(con, HWB_A, "emergency_admissions", "plan_value") is None

    write_csv(landing / f"plan_{HWB_A}_2025-26.csv", "AREA_CODE,METRIC_ID,PERIOD,PLAN_VALUE",
              f"{HWB_A},emergency_admissions,2025-04,123.5")
    assert [r.status for r in load_landing(con, landing, pseudo_key=None).results] == ["loaded"]

    assert stale_models(con, project) == {}
    assert figure(con, HWB_A, "emergency_admissions", "plan_value") == 123.5
    assert figure(con, ICB, "emergency_admissions", "plan_value") is None


def test_a_new_orgs_file_makes_stale_only_the_models_that_read_orgs(con, landing):
    project = built_april(con, landing)
    providers = {code: figure(con, code, "ae_attendances") for code in ("R0A", "RM3")}
    assert figure(con, ICB, "ae_attendances") == providers["R0A"] + providers["RM3"]
    england = figure(con, "E92000001", "ae_attendances")

    # RM3 moves to an ICB that has none of our HWBs
    write_csv(landing / "orgs_all_2025-05.csv", "ORG_CODE,ORG_TYPE,ORG_NAME,PARENT_CODE",
              f"RM3,PROVIDER,Northern Care Alliance NHS Foundation Trust,{OTHER_ICB}")
    assert [r.status for r in load_landing(con, landing, pseudo_key=None).results] == ["loaded"]

    readers = {m.name for m in project.metrics if "orgs" in project.datasets_of(m.name)}
    assert readers == {"emergency_admissions"}        # derived from what each model reads
    assert stale_models(con, project) == {APRIL: readers}
    # the provider measure was not rebuilt, yet its ICB follows the new tree
    assert figure(con, ICB, "ae_attendances") == providers["R0A"]
    assert figure(con, "E92000001", "ae_attendances") == england
