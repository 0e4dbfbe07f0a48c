"""metric_spc: Making Data Count's XmR chart rules on hand-made series with known answers, a real
provider's A&E series checked by hand, and a cross-check against a plain-Python reading."""
from __future__ import annotations

import csv
import random
from datetime import date
from pathlib import Path

import pytest

from flows.db import connect
from flows.models.runner import create_views, load_project, loaded_months, plan_months
from flows.settings import SpcSettings, apply_spc_settings
from tests.sql import spc_reference as ref
from tests.sql.conftest import HWB_A, ICB, build, write_csv, write_reference

DATA = Path(__file__).resolve().parents[1] / "data" / "spc"
MISSING = object()          # no metric_values row for the month at all


@pytest.fixture
def con(tmp_path):
    """metric_spc over hand-made metric_values: the view is replaced by a table of the contract's
    columns (extracts contract s4), so a test sets each month's value, plan and status itself."""
    con = connect(tmp_path / "spc.duckdb")
    create_views(con, load_project())
    con.execute("drop view metric_values")
    con.execute("""create table metric_values (period_month date, area_type varchar,
        area_code varchar, metric_id varchar, numerator double, denominator double, value double,
        plan_value double, status varchar)""")
    return con


def month(i: int, start: date = date(2023, 1, 1)) -> date:
    m = start.month - 1 + i
    return date(start.year + m // 12, m % 12 + 1, 1)


def add_metric(con, metric_id="m", higher_is_better: bool | None = True) -> None:
    con.execute("insert or replace into metric_catalog (metric_id, title, unit, higher_is_better) "
                "values (?, ?, 'percent', ?)", [metric_id, metric_id, higher_is_better])


def add_series(con, values, *, metric_id="m", area_code="A", area_type="hwb", plan=None,
               provisional=(), higher_is_better: bool | None = True) -> None:
    """One metric_values row per month from 2023-01; MISSING leaves the month out, None is a row
    with no value; `provisional` are month indexes whose status is provisional."""
    add_metric(con, metric_id, higher_is_better)
    for i, v in enumerate(values):
        if v is MISSING:
            continue
        con.execute("insert into metric_values values (?, ?, ?, ?, null, null, ?, ?, ?)",
                    [month(i), area_type, area_code, metric_id, v, plan,
                     "provisional" if i in provisional else "final"])


def spc_rows(con, metric_id="m", area_code="A", area_type="hwb") -> list[dict]:
    cur = con.execute("select * from metric_spc where metric_id = ? and area_code = ? "
                      "and area_type = ? order by period_month", [metric_id, area_code, area_type])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def flagged(rows) -> dict[int, tuple[str, str]]:
    """{month index: (point_type, rule)} of the special-cause points."""
    return {i: (r["point_type"], r["special_cause_rule"]) for i, r in enumerate(rows)
            if r["point_type"] not in (None, "common_cause")}


BASE = [10, 12] * 6       # mean 11, every moving range 2: limits 11 +/- 5.32, near 11 +/- 3.547


# ---------------------------------------------------------------- limits


def test_limits_are_the_mean_plus_or_minus_2_66_mean_moving_ranges(con):
    values = [10, 12, 11, 13, 12, 14, 13, 12, 11, 12, 13, 11]
    add_series(con, values)
    rows = spc_rows(con)
    # mean 144 / 12 = 12; moving ranges 2,1,2,1,2,1,1,1,1,1,2 = 15 over 11 = 1.363636...
    assert rows[0]["mean"] == pytest.approx(12.0)
    assert rows[0]["upl"] == pytest.approx(12 + 2.66 * 15 / 11)       # 15.627273
    assert rows[0]["lpl"] == pytest.approx(12 - 2.66 * 15 / 11)       # 8.372727
    assert rows[0]["unl"] == pytest.approx(12 + 2 / 3 * 2.66 * 15 / 11)
    assert rows[0]["lnl"] == pytest.approx(12 - 2 / 3 * 2.66 * 15 / 11)
    assert {r["point_type"] for r in rows} == {"common_cause"}
    assert [r["rebase_group"] for r in rows] == [0] * 12
    assert rows[-1]["variation"] == "common_cause"
    assert all(r["variation"] is None for r in rows[:-1])


# ---------------------------------------------------------------- each rule alone, both ways


@pytest.mark.parametrize("higher_is_better, high, low", [
    (True, "special_cause_improvement", "special_cause_concern"),
    (False, "special_cause_concern", "special_cause_improvement"),
])
def test_a_point_outside_the_limits(con, higher_is_better, high, low):
    # 24 alternating months, one far above and one far below
    values = BASE * 2
    values[6], values[17] = 40, -18
    add_series(con, values, higher_is_better=higher_is_better)
    assert flagged(spc_rows(con)) == {6: (high, "outside_limits"), 17: (low, "outside_limits")}


@pytest.mark.parametrize("sign", [1, -1])
def test_a_run_of_seven_on_one_side_of_the_mean(con, sign):
    # BASE then seven months a little above (or below) the mean; with BASE's last month (12 or
    # 10) on the same side the run is eight long: every point of it is flagged
    tail = [11.5] * 7 if sign > 0 else [10.5] * 7
    values = (BASE if sign > 0 else BASE[1:] + [10]) + tail
    add_series(con, values)
    kind = "special_cause_improvement" if sign > 0 else "special_cause_concern"
    assert flagged(spc_rows(con)) == {i: (kind, "run") for i in range(11, 19)}


def test_six_on_one_side_is_not_a_run(con):
    add_series(con, BASE + [11.6] * 5)     # BASE's last 12 and five more: six above the mean
    assert flagged(spc_rows(con)) == {}


@pytest.mark.parametrize("sign", [1, -1])
def test_a_trend_of_seven_each_higher_or_lower(con, sign):
    base = [9, 13] * 6
    trend = [8, 9, 10, 11, 12, 13, 14]            # crosses the mean: not a run
    values = base + (trend if sign > 0 else trend[::-1])
    add_series(con, values)
    kind = "special_cause_improvement" if sign > 0 else "special_cause_concern"
    assert flagged(spc_rows(con)) == {i: (kind, "trend") for i in range(12, 19)}


def test_six_rising_and_a_tie_is_not_a_trend(con):
    add_series(con, [9, 13] * 6 + [8, 9, 10, 10, 11, 12, 13])
    assert flagged(spc_rows(con)) == {}


@pytest.mark.parametrize("sign", [1, -1])
def test_two_of_three_beyond_the_near_limit(con, sign):
    # mean 308 / 27 = 11.407, mean moving range 62 / 26 = 2.385: near limit 15.64, upper 17.75.
    # The two 16s are near, the 12 between them is not, and all three are on one side of the
    # mean: only the two near points are flagged. Mirrored (22 - x) for the low side.
    values = BASE + [16, 12, 16] + BASE
    if sign < 0:
        values = [22 - v for v in values]
    rows = spc_rows_of(con, values)
    kind = "special_cause_improvement" if sign > 0 else "special_cause_concern"
    assert flagged(rows) == {12: (kind, "two_in_three"), 14: (kind, "two_in_three")}


def test_two_near_points_with_one_across_the_mean_are_not_flagged(con):
    rows = spc_rows_of(con, BASE + [16, 9, 16] + BASE)
    assert flagged(rows) == {}


def spc_rows_of(con, values, **kw):
    add_series(con, values, **kw)
    return spc_rows(con)


def test_a_metric_with_no_direction_is_neutral(con):
    values = BASE * 2
    values[6], values[17] = 40, -18
    rows = spc_rows_of(con, values, higher_is_better=None)
    assert flagged(rows) == {6: ("special_cause_neutral_high", "outside_limits"),
                             17: ("special_cause_neutral_low", "outside_limits")}
    assert rows[-1]["assurance"] is None


def test_a_trend_decides_over_a_run(con):
    # a fall that stays above the mean (12.58): 18 (the last of the base) to 14 are a run above
    # the mean (high), and 20 to 14 a falling trend (low): the trend decides them
    rows = spc_rows_of(con, [2, 18] * 6 + [20, 19, 18, 17, 16, 15, 14])
    assert rows[0]["mean"] == pytest.approx(239 / 19)
    assert rows[0]["upl"] == pytest.approx(239 / 19 + 2.66 * 184 / 18)     # nothing outside
    expected = {11: ("special_cause_improvement", "run")}
    expected |= {i: ("special_cause_concern", "trend") for i in range(12, 19)}
    assert flagged(rows) == expected


def test_outside_decides_over_a_trend(con):
    # mean 283 / 19 = 14.89, mean moving range 4 x 11, 27, 10, 5, 5, 4, 4, 4 -> 103 / 18: upper
    # limit 30.12. 40 starts a falling trend (low) but is above the upper limit (high): outside
    # decides it. The base months are all below the mean: a run of twelve (low).
    rows = spc_rows_of(con, [9, 13] * 6 + [40, 30, 25, 20, 16, 12, 8])
    assert rows[0]["upl"] == pytest.approx(283 / 19 + 2.66 * 103 / 18)
    expected = {i: ("special_cause_concern", "run") for i in range(12)}
    expected[12] = ("special_cause_improvement", "outside_limits")
    expected |= {i: ("special_cause_concern", "trend") for i in range(13, 19)}
    assert flagged(rows) == expected


# ---------------------------------------------------------------- used months


def test_a_provisional_month_is_classified_but_never_sets_the_limits(con):
    values = BASE + [40]
    rows = spc_rows_of(con, values, provisional={12})
    assert rows[0]["mean"] == pytest.approx(11.0)                  # the 40 is not in the mean
    assert rows[0]["upl"] == pytest.approx(11 + 2.66 * 2)          # nor in a moving range
    assert rows[12]["is_used"] is False
    assert rows[12]["point_type"] == "special_cause_improvement"
    assert rows[12]["variation"] == "special_cause_improvement"


def test_too_few_used_months_leave_mean_limits_and_types_empty(con):
    # twelve months, one provisional: eleven used, one short of the default 12
    rows = spc_rows_of(con, BASE, provisional={11}, plan=5.0)
    assert rows[0]["used_months"] == 11
    assert all(r["mean"] is None and r["upl"] is None and r["point_type"] is None for r in rows)
    assert rows[-1]["variation"] is None and rows[-1]["assurance"] is None


def test_the_minimum_is_a_setting(con):
    apply_spc_settings(con, SpcSettings(min_points=11))
    rows = spc_rows_of(con, BASE, provisional={11})
    assert rows[0]["mean"] == pytest.approx(120 / 11)         # six 10s and five 12s
    assert rows[0]["min_points"] == 11


def test_missing_months_get_a_row_and_break_moving_ranges(con):
    # month 3 has no row and month 8 a row with no value: both get rows with no point type, and
    # no moving range spans them (10 -> 12 across month 3, 10 -> 14 across month 8)
    values = [10, 12, 10, MISSING, 12, 10, 12, 10, None, 14, 12, 10, 12, 10, 12, 10]
    rows = spc_rows_of(con, values)
    assert len(rows) == 16
    assert rows[3]["point_type"] is None and rows[8]["point_type"] is None
    assert rows[3]["value"] is None and rows[3]["is_used"] is False
    # 14 used months, sum 156; 11 moving ranges, every one 2
    assert rows[0]["used_months"] == 14
    assert rows[0]["mean"] == pytest.approx(156 / 14)
    assert rows[0]["upl"] == pytest.approx(156 / 14 + 2.66 * 2)
    assert rows[3]["mean"] == pytest.approx(156 / 14)          # the lines run on through gaps
    assert flagged(rows) == {}


def test_runs_step_over_a_month_with_no_value(con):
    values = BASE + [11.5, 11.5, 11.5, MISSING, 11.5, 11.5, 11.5]
    rows = spc_rows_of(con, values)
    assert set(flagged(rows)) == {11, 12, 13, 14, 16, 17, 18}


# ---------------------------------------------------------------- settings


def test_fixed_limits_come_from_the_first_n_used_months(con):
    apply_spc_settings(con, SpcSettings(fix_after=12))
    rows = spc_rows_of(con, BASE + [20, 22] * 6)
    assert rows[0]["mean"] == pytest.approx(11.0)
    assert rows[0]["upl"] == pytest.approx(11 + 2.66 * 2)
    assert rows[-1]["upl"] == pytest.approx(11 + 2.66 * 2)
    assert {r["point_type"] for r in rows[12:]} == {"special_cause_improvement"}


def test_limits_float_with_every_used_month_by_default(con):
    rows = spc_rows_of(con, BASE + [20, 22] * 6)
    # moving ranges: 2 x 11, 8 (12 -> 20), 2 x 11 -> 52 / 23
    assert rows[0]["mean"] == pytest.approx(16.0)
    assert rows[0]["upl"] == pytest.approx(16 + 2.66 * 52 / 23)


def test_screening_leaves_out_moving_ranges_of_3_267_times_the_mean_or_more(con):
    apply_spc_settings(con, SpcSettings(screen_outliers=True))
    values = BASE + [40] + BASE[1:]
    rows = spc_rows_of(con, values)
    # unscreened ranges: 2 x 21, 28, 30 -> 100 / 23 = 4.35; 28 and 30 are >= 14.2: screened out
    assert rows[0]["upl"] == pytest.approx(rows[0]["mean"] + 2.66 * 2)


# ---------------------------------------------------------------- rebasing


def test_a_change_starts_a_new_rebase_group_of_the_areas_own_series(con):
    values = BASE + [20, 22] * 6
    add_series(con, values)
    add_series(con, values, area_code=ICB, area_type="icb")
    add_series(con, values, metric_id="other")
    con.execute("insert into raw_changes values (1, 1, 'A', 'm', '2024-01', 'Falls team')")
    rows = spc_rows(con)
    assert [r["rebase_group"] for r in rows] == [0] * 12 + [1] * 12
    assert rows[0]["mean"] == pytest.approx(11.0) and rows[12]["mean"] == pytest.approx(21.0)
    # no moving range spans the change (12 -> 20): both groups' ranges are all 2
    assert rows[12]["upl"] == pytest.approx(21 + 2.66 * 2)
    assert flagged(rows) == {}
    # the months since the change against the limits from before it: every one is special
    assert rows[12]["prior_mean"] == pytest.approx(11.0)
    assert {r["prior_point_type"] for r in rows[12:]} == {"special_cause_improvement"}
    assert rows[0]["prior_point_type"] is None
    # neither the ICB's series nor another metric is rebased
    assert {r["rebase_group"] for r in spc_rows(con, area_code=ICB, area_type="icb")} == {0}
    assert {r["rebase_group"] for r in spc_rows(con, metric_id="other")} == {0}


def test_a_change_for_every_metric(con):
    add_series(con, BASE * 2)
    add_series(con, BASE * 2, metric_id="other")
    con.execute("insert into raw_changes values (1, 1, 'a', '*', '2023-07', 'Discharge to assess')")
    assert [r["rebase_group"] for r in spc_rows(con, metric_id="other")] == [0] * 6 + [1] * 18
    rows = spc_rows(con)
    assert rows[0]["mean"] is None                   # six months before the change: too few
    assert rows[6]["mean"] == pytest.approx(11.0)


def test_a_change_at_or_before_the_first_month_starts_no_group(con):
    add_series(con, BASE)
    con.execute("insert into raw_changes values (1, 1, 'A', 'm', '2023-01', 'x'), "
                "(1, 2, 'A', 'm', '2020-05', 'y'), (1, 3, 'A', 'm', '2030-05', 'z')")
    assert {r["rebase_group"] for r in spc_rows(con)} == {0}


# ---------------------------------------------------------------- assurance


@pytest.mark.parametrize("higher_is_better, plan, expected", [
    (True, 5.0, "consistent_pass"),       # the process (5.68 to 16.32) always beats 5
    (True, 17.0, "consistent_fail"),
    (True, 11.0, "inconsistent"),
    (False, 17.0, "consistent_pass"),
    (False, 5.0, "consistent_fail"),
    (False, 11.0, "inconsistent"),
    (True, None, None),
    (None, 5.0, None),
])
def test_assurance_of_each_kind(con, higher_is_better, plan, expected):
    rows = spc_rows_of(con, BASE, plan=plan, higher_is_better=higher_is_better)
    assert rows[-1]["assurance"] == expected
    assert all(r["assurance"] is None for r in rows[:-1])


def test_assurance_uses_the_last_groups_limits(con):
    add_series(con, BASE + [20, 22] * 6, plan=15.0)
    con.execute("insert into raw_changes values (1, 1, 'A', 'm', '2024-01', 'x')")
    # before the change 15 is inside (5.68 to 16.32); after it, below 15.68: a consistent pass
    assert spc_rows(con)[-1]["assurance"] == "consistent_pass"


# ---------------------------------------------------------------- a real series


def _rf4_performance() -> list[float]:
    with open(DATA / "ae_attendances_RF4_type1.csv") as f:
        rows = list(csv.DictReader(f))
    return [100.0 * (1 - int(r["breaches"]) / int(r["attendances"])) for r in rows]


def test_a_real_provider_series_rf4_type1_four_hour_performance(con):
    """RF4 type 1, April 2016 to March 2019 (NHS England via NHSRdatasets): 36 months of
    100 x (1 - breaches / attendances).

    Hand calculation (checked with a separate plain-Python sum): the 36 percentages sum to
    2808.45, mean 78.0124; the 35 moving ranges sum to 130.6942, mean 3.73412; so the limits
    are 78.0124 +/- 2.66 x 3.73412 = 68.0797 to 87.9452 and the near limits 71.3906 to
    84.6343. Reading the rules down the table:
      2016-04 to 2016-12  nine above the mean: a run (high)
      2016-08 90.84, 2016-09 88.98  above 87.95: outside (high)
      2016-10 86.36, 2016-11 87.02  near (over 84.63), with 2016-12 all above: two of three
      2017-02 to 2017-08  84.96 86.48 84.05 80.24 85.51 86.14 84.07, then 84.92: a run of
                          eight above; 84.96 & 86.48, 85.51 & 86.14 near pairs: two of three
      2017-09 to 2018-03  84.92 82.42 76.99 72.79 71.37 69.85 69.72: seven falling (low)
      2018-07 to 2019-03  nine below the mean: a run (low); 67.28 55.18 57.86 below 68.08
    Higher is better, so high is improvement and low is concern."""
    values = _rf4_performance()
    assert values[0] == pytest.approx(78.2734, abs=1e-4)          # 1 - 4082 / 18788
    rows = spc_rows_of(con, values, higher_is_better=True, area_code="RF4", area_type="provider")
    rows = spc_rows(con, area_code="RF4", area_type="provider")
    assert rows[0]["mean"] == pytest.approx(78.0124, abs=1e-4)
    assert rows[0]["upl"] == pytest.approx(87.9452, abs=1e-4)
    assert rows[0]["lpl"] == pytest.approx(68.0797, abs=1e-4)
    assert rows[0]["unl"] == pytest.approx(84.6343, abs=1e-4)
    good, bad = "special_cause_improvement", "special_cause_concern"
    expected = {i: (good, "run") for i in (0, 1, 2, 3, 8, 12, 13, 16)}
    expected |= {i: (good, "outside_limits") for i in (4, 5)}
    expected |= {i: (good, "two_in_three") for i in (6, 7, 10, 11, 14, 15)}
    expected |= {i: (bad, "trend") for i in range(17, 24)}
    expected |= {i: (bad, "run") for i in (27, 28, 29, 30, 31, 35)}
    expected |= {i: (bad, "outside_limits") for i in (32, 33, 34)}
    assert flagged(rows) == expected
    assert rows[-1]["variation"] == bad


# ---------------------------------------------------------------- cross-check


@pytest.mark.parametrize("seed", range(24))
def test_agrees_with_a_plain_python_reading_of_the_rules(con, seed):
    rng = random.Random(seed)
    n = rng.randint(10, 40)
    level = rng.choice([0.0, 50.0, 1000.0])
    values = []
    for i in range(n):
        r = rng.random()
        if r < 0.05:
            values.append(MISSING)
        elif r < 0.08:
            values.append(None)
        elif r < 0.15:
            values.append(level + rng.choice([-1, 1]) * rng.uniform(8, 20))
        else:
            values.append(level + round(rng.gauss(0, 3) + (i / 3 if seed % 3 == 0 else 0), 1))
    provisional = {i for i in range(n) if rng.random() < 0.1}
    higher = rng.choice([True, False, None])
    settings = SpcSettings(min_points=rng.choice([5, 12]), fix_after=rng.choice([None, 8]),
                           screen_outliers=rng.random() < 0.3)
    apply_spc_settings(con, settings)
    starts = sorted(rng.sample(range(1, n), rng.randint(0, 2)))
    for s in starts:
        con.execute("insert into raw_changes values (1, ?, 'A', 'm', ?, 'x')",
                    [s, month(s).strftime("%Y-%m")])
    rows = spc_rows_of(con, values, provisional=provisional, higher_is_better=higher)
    # the view's calendar runs from the first to the last month with a row
    first = next(i for i, v in enumerate(values) if v is not MISSING)
    last = max(i for i, v in enumerate(values) if v is not MISSING)
    months = [ref.Month(None if v is MISSING or v is None else float(v), i not in provisional)
              for i, v in enumerate(values)][first:last + 1]
    expected = ref.spc(months, starts=[s - first for s in starts if s > first],
                       higher_is_better=higher, min_points=settings.min_points,
                       fix_after=settings.fix_after, screen=settings.screen_outliers)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        assert got["rebase_group"] == want["rebase_group"]
        assert got["point_type"] == want["point_type"], (got, want)
        assert got["special_cause_rule"] == want["rule"]
        for key in ("mean", "lpl", "upl"):
            assert got[key] == pytest.approx(want[key], abs=1e-9) if want[key] is not None \
                else got[key] is None


# ---------------------------------------------------------------- the changes file


def test_a_changes_file_loads_and_makes_no_month_stale(tmp_path):
    landing = write_reference(tmp_path / "landing")
    write_csv(landing / "apc_R0A_2025-09.csv",
              "PROCODE,PROVSPNO,PSEUDO_ID,STARTAGE,SEX,RESLADST_ONS,ADMIDATE,ADMIMETH,DISDATE,"
              "DISMETH,DISDEST,DISCHARGE_READY_DATE,DIAG_4_01,DIAG_4_02,DIAG_4_03",
              f"R0A,1,p1,70,1,{HWB_A},2025-09-05,21,2025-09-09,1,19,,I50,,")
    con = connect(tmp_path / "t.duckdb")
    build(con, landing)
    write_csv(landing / f"changes_{HWB_A}.csv", "AREA_CODE,METRIC_ID,CHANGE_DATE,DESCRIPTION",
              f"{HWB_A},*,2025-06,Discharge to assess",
              f"{HWB_A},falls_admissions_65plus,2025-13,Falls team",
              f"{ICB},*,2025-06,Another area's change")
    summary = build(con, landing)
    assert con.execute("select area_code, metric_id, change_month, description from stg_changes"
                       ).fetchall() == [(HWB_A, "*", date(2025, 6, 1), "Discharge to assess")]
    rules = sorted(r[0] for r in con.execute("select rule from quarantine").fetchall())
    assert rules == ["bad_period", "org_mismatch"]
    project = load_project()
    assert not any(p.stale for p in plan_months(con, project, loaded_months(con)))
    assert summary is not None
