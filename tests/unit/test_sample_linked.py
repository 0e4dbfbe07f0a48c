"""The sample's linked people (extracts 3a): council rows drawn from the hospital discharges of
the same people, with matches, near misses, care home admissions inside and outside 30 days,
readmissions inside and outside 91 days, and one council whose ids cannot be linked for a while.
Read from the files the generator writes (the conftest's 24-month sample), as a sender's would be."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from flows.ingest.naming import parse_file_name
from sample.generate import AREAS, UNLINKED_COUNCIL
from tests.unit.test_sample import all_apc, canonical, read_landing, to_dates

EMERGENCY = ["21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"]


def council_rows(landing: Path, dataset: str, date_column: str) -> pl.DataFrame:
    """Current rows: the latest file's row per council, client and date."""
    frames = []
    for path in sorted(landing.glob(f"{dataset}_*")):
        name = parse_file_name(path.name)
        frames.append(read_landing(path).with_columns(pl.lit(name.period).alias("_period")))
    df = to_dates(pl.concat(frames, how="diagonal"), date_column)
    return df.sort("_period").group_by(["LA_CODE", "CLIENT_ID", date_column], maintain_order=True).last()


@pytest.fixture(scope="module")
def spells(sample_landing) -> pl.DataFrame:
    return canonical(all_apc(sample_landing)).filter(pl.col("NEWNHSNO").is_not_null())


@pytest.fixture(scope="module")
def discharges(spells) -> pl.DataFrame:
    return spells.filter(pl.col("DISDATE").is_not_null() & (pl.col("DISMETH") != "4")).select(
        "NEWNHSNO", "DISDATE", pl.col("STARTAGE").cast(pl.Int64).alias("age"))


def days_after_nearest_discharge(rows: pl.DataFrame, discharges: pl.DataFrame, date_column: str) -> pl.Series:
    """For each council row with an NHS number, the days from the person's nearest discharge
    on or before the row's date (null when there is none)."""
    joined = rows.filter(pl.col("NEWNHSNO").is_not_null()).with_row_index("row").join(
        discharges, on="NEWNHSNO", how="left")
    gap = (pl.col(date_column) - pl.col("DISDATE")).dt.total_days()
    return joined.with_columns(gap.alias("gap")).group_by("row").agg(
        pl.col("gap").filter(pl.col("gap") >= -1).min())["gap"]


def test_reablement_dates_match_the_discharge_or_just_miss_it(sample_landing, discharges):
    rows = council_rows(sample_landing, "reablement", "HOSP_DISCHARGE_DATE")
    gap = days_after_nearest_discharge(rows, discharges, "HOSP_DISCHARGE_DATE").fill_null(99)
    share = {d: (gap == d).mean() for d in (-1, 0, 1, 2)}
    assert 0.7 < share[0] < 0.9                     # the hospital's DISDATE
    assert 0.05 < share[1] < 0.2                    # the day after: still a match
    assert share[2] > 0.02 and share[-1] > 0.01     # two days late, a day early: a near miss


def test_care_home_admissions_follow_discharges_inside_and_outside_30_days(sample_landing, discharges):
    rows = council_rows(sample_landing, "carehome", "ADMISSION_DATE").filter(pl.col("PERMANENT") == "Y")
    gap = days_after_nearest_discharge(rows, discharges, "ADMISSION_DATE")
    assert ((gap >= 0) & (gap <= 2)).sum() > 100      # straight from hospital
    assert ((gap >= 3) & (gap <= 30)).sum() > 10      # some weeks later, inside the window
    assert ((gap >= 31) & (gap <= 60)).sum() > 10     # just outside it


def test_readmissions_after_reablement_inside_and_outside_91_days(sample_landing, spells):
    rows = council_rows(sample_landing, "reablement", "HOSP_DISCHARGE_DATE").filter(
        pl.col("NEWNHSNO").is_not_null()).with_row_index("row")
    emergency = spells.filter(pl.col("ADMIMETH").is_in(EMERGENCY)).select("NEWNHSNO", "ADMIDATE")
    gap = rows.join(emergency, on="NEWNHSNO").with_columns(
        (pl.col("ADMIDATE") - pl.col("HOSP_DISCHARGE_DATE")).dt.total_days().alias("gap")).filter(pl.col("gap") >= 1)
    first = gap.group_by("row").agg(pl.col("gap").min())["gap"]
    inside = (first <= 91).sum() / rows.height
    assert 0.05 < inside < 0.4                      # readmitted within 91 days
    assert (first > 91).sum() > 50                  # only later


def test_one_council_sends_ids_of_its_own_for_the_first_half(sample_landing):
    council = AREAS[UNLINKED_COUNCIL].code
    months = sorted({parse_file_name(p.name).period for p in sample_landing.glob("apc_*")})
    half = months[len(months) // 2]
    council_files = [p for d in ("reablement", "carehome") for p in sample_landing.glob(f"{d}_{council}_*")]
    for path in sorted(council_files):
        df = read_landing(path)
        early = parse_file_name(path.name).period < half
        assert df["NEWNHSNO"].is_null().all() == early, path.name
        assert df["PSEUDO_ID"].is_not_null().any() == early, path.name
        assert not df["PSEUDO_ID"].drop_nulls().str.contains(r"\d{10}").any()
    other = AREAS[1 - UNLINKED_COUNCIL].code
    for path in sorted(p for d in ("reablement", "carehome") for p in sample_landing.glob(f"{d}_{other}_*")):
        assert read_landing(path)["PSEUDO_ID"].is_null().all(), path.name
