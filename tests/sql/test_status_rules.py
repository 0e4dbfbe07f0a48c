"""Provisional or final, exactly per the contract: follow-up windows and expected files."""
from __future__ import annotations

from flows.db import connect
from tests.sql.conftest import APC_HEADER, HWB_A, build, statuses, write_csv, write_reference

MONTHS = ("2025-09", "2025-10", "2025-11", "2025-12")


def apc_row(provider: str, n: str, month: str) -> str:
    return f"{provider},{n},p{n},70,1,{HWB_A},{month}-05,21,{month}-09,1,19,,I50,,"


def landing_with(tmp_path, deliveries: dict[str, tuple[str, ...]]):
    landing = write_reference(tmp_path / "landing")
    for provider, months in deliveries.items():
        for month in months:
            write_csv(landing / f"apc_{provider}_{month}.csv", APC_HEADER, apc_row(provider, f"{provider}{month}", month))
    return landing


def test_datasets_never_delivered_do_not_hold_months_back(tmp_path):
    con = connect(tmp_path / "t.duckdb")
    build(con, landing_with(tmp_path, {"R0A": MONTHS, "RM3": MONTHS}),
          "care_home_admissions_65plus", "emergency_admissions", "readmissions_30d")
    # no council has ever sent carehome or reablement files: nothing is expected, so final
    assert set(statuses(con, "care_home_admissions_65plus", "2025-10").values()) == {"final"}
    assert set(statuses(con, "emergency_admissions", "2025-10").values()) == {"final"}
    # readmissions need 30 days after the month: December's window runs past the data
    assert set(statuses(con, "readmissions_30d", "2025-11").values()) == {"final"}
    assert set(statuses(con, "readmissions_30d", "2025-12").values()) == {"provisional"}


def test_a_missing_expected_extract_makes_its_month_provisional(tmp_path):
    con = connect(tmp_path / "t.duckdb")
    # RM3 delivers from September, then misses November
    build(con, landing_with(tmp_path, {"R0A": MONTHS, "RM3": ("2025-09", "2025-10", "2025-12")}),
          "emergency_admissions")
    assert set(statuses(con, "emergency_admissions", "2025-11").values()) == {"provisional"}
    assert set(statuses(con, "emergency_admissions", "2025-10").values()) == {"final"}


def test_a_follow_up_window_counts_from_the_latest_period_of_its_data_or_of_anything_loaded(tmp_path):
    con = connect(tmp_path / "t.duckdb")
    build(con, landing_with(tmp_path, {"R0A": MONTHS}), "reablement_at_home_91d")
    # no reablement file yet: judged by the latest period loaded (December), 91 days after
    # September ran past it (30 December < 31 December is passed; October's runs to 30 January)
    assert set(statuses(con, "reablement_at_home_91d", "2025-09").values()) == {"final"}
    assert set(statuses(con, "reablement_at_home_91d", "2025-10").values()) == {"provisional"}
