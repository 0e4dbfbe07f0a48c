"""The sample landing-folder generator (sample/generate.py) writes what the contract describes."""
from __future__ import annotations

import gzip
import io
import re
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from flows.errors import FileRejected
from flows.ingest.datasets import DATASETS
from flows.ingest.identifiers import nhs_number_valid
from flows.ingest.naming import parse_file_name
from sample.generate import METRIC_IDS, generate_landing

EMERGENCY = {"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"}
DATE_COLUMNS = {"ADMIDATE", "DISDATE", "DISCHARGE_READY_DATE", "HOSP_DISCHARGE_DATE",
                "SERVICE_START_DATE", "ADMISSION_DATE"}


# ---- helpers ------------------------------------------------------------------------------

def read_landing(path: Path) -> pl.DataFrame:
    """Read a landing file the way the contract allows it to be written: every column as text,
    names upper-cased and trimmed, DD/MM/YYYY dates turned into YYYY-MM-DD, empty -> null."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        df = pl.read_parquet(path)
    else:
        data = path.read_bytes()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        text = data.decode("utf-8-sig")
        df = pl.read_csv(io.StringIO(text), infer_schema=False)
    df = df.rename({c: c.strip().upper() for c in df.columns})
    df = df.with_columns(pl.col(c).cast(pl.String).str.strip_chars() for c in df.columns)
    df = df.with_columns(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c)
                         for c in df.columns)
    return df.with_columns(
        pl.col(c).str.replace(r"^(\d{2})/(\d{2})/(\d{4})$", "${3}-${2}-${1}")
        for c in df.columns if c in DATE_COLUMNS)


def period_bounds(period: str) -> tuple[date, date]:
    start = date(int(period[:4]), int(period[5:]), 1)
    nxt = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, nxt - timedelta(days=1)


def to_dates(df: pl.DataFrame, *cols: str) -> pl.DataFrame:
    return df.with_columns(pl.col(c).str.to_date("%Y-%m-%d") for c in cols)


def good_apc_files(landing: Path) -> dict[tuple[str, str], Path]:
    """(PROCODE, period) -> the file that holds that month (a resubmission wins)."""
    out: dict[tuple[str, str], Path] = {}
    for path in sorted(landing.glob("apc_*")):
        parsed = parse_file_name(path.name)
        key = (parsed.org_code, parsed.period)
        if key not in out or parsed.free_text == "resubmission":
            out[key] = path
    return out


def all_apc(landing: Path) -> pl.DataFrame:
    frames = []
    for (org, period), path in sorted(good_apc_files(landing).items()):
        frames.append(read_landing(path).with_columns(pl.lit(org).alias("_org"),
                                                      pl.lit(period).alias("_period")))
    df = pl.concat(frames, how="diagonal")
    return to_dates(df, "ADMIDATE", "DISDATE", "DISCHARGE_READY_DATE")


def canonical(apc: pl.DataFrame) -> pl.DataFrame:
    """Each spell's row from the latest period's file."""
    return apc.sort("_period").group_by(["PROCODE", "PROVSPNO"], maintain_order=True).last()


# ---- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """24 months, all format variants, no faults (the demo's shape)."""
    landing = tmp_path_factory.mktemp("sample24") / "landing"
    began = time.perf_counter()
    summary = generate_landing(landing, seed=42, start="2024-04", months=24)
    seconds = time.perf_counter() - began
    print(f"generated 24 months in {seconds:.1f}s: {len(summary.files)} files, "
          f"{sum(v for k, v in summary.rows.items() if k.startswith('apc'))} apc rows")
    return landing, summary


@pytest.fixture(scope="module")
def apc(full):
    return all_apc(full[0])


# ---- determinism --------------------------------------------------------------------------

def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_same_seed_gives_byte_identical_files(tmp_path):
    kwargs = dict(seed=11, start="2025-01", months=4, formats=True, faults=True)
    generate_landing(tmp_path / "a", **kwargs)
    generate_landing(tmp_path / "b", **kwargs)
    a, b = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b")
    assert a.keys() == b.keys()
    assert [n for n in a if a[n] != b[n]] == []
    generate_landing(tmp_path / "c", **{**kwargs, "seed": 12})
    c = _snapshot(tmp_path / "c")
    assert a["apc_R0A_2025-02.csv"] != c["apc_R0A_2025-02.csv"]


def test_faults_only_add_to_the_clean_sample(tmp_path):
    """faults=True leaves every clean file as it was, except the few that carry bad rows."""
    generate_landing(tmp_path / "clean", seed=5, months=3, faults=False)
    summary = generate_landing(tmp_path / "faulty", seed=5, months=3, faults=True)
    clean, faulty = _snapshot(tmp_path / "clean"), _snapshot(tmp_path / "faulty")
    assert set(clean) < set(faulty)
    changed = sorted(n for n in clean if clean[n] != faulty[n])
    assert changed == ["apc_R0A_2024-05.csv", "apc_RM3_2024-05.csv",
                       "carehome_E08000009_2024-05.csv", "reablement_E08000003_2024-05.csv"]
    for name in changed:
        assert summary.rows[name] > clean[name].count(b"\n") - 1


# ---- names, volumes, summary ----------------------------------------------------------------

def test_every_file_name_parses_and_the_summary_matches(full):
    landing, summary = full
    assert summary.months[0] == "2024-04" and summary.months[-1] == "2026-03"
    assert len(summary.months) == 24
    assert summary.icb == "QOP"
    assert summary.hwbs == ["E08000003", "E08000009"]
    assert summary.providers == ["R0A", "RM3", "RWW"]
    names = sorted(p.name for p in landing.iterdir())
    assert names == sorted(p.name for p in summary.files)
    counts: dict[str, int] = {}
    for name in names:
        parsed = parse_file_name(name)
        counts[parsed.dataset] = counts.get(parsed.dataset, 0) + 1
        if parsed.dataset in ("apc", "reablement", "carehome"):
            assert parsed.period in summary.months
            assert parsed.org_code in summary.providers + summary.hwbs
    assert counts == {"orgs": 1, "population": 4, "plan": 4,
                      "apc": 3 * 24 + 1, "reablement": 2 * 24, "carehome": 2 * 24}
    for path in summary.files:
        assert read_landing(path).height == summary.rows[path.name], path.name


def test_required_columns_present_in_every_file(full):
    landing, _ = full
    for path in landing.iterdir():
        spec = DATASETS[parse_file_name(path.name).dataset]
        cols = set(read_landing(path).columns)
        assert set(spec.required) <= cols, path.name
        if spec.person_columns:
            assert cols & set(spec.person_columns), path.name


def test_volumes_are_realistic(full, apc):
    landing, _ = full
    pop = pl.read_csv(landing / "population_ONS_2024.csv")
    per_hwb = dict(pop.group_by("AREA_CODE").agg(pl.col("POPULATION").sum()).iter_rows())
    assert all(150_000 < v < 600_000 for v in per_hwb.values())
    assert apc.height <= 320_000
    spells = canonical(apc)
    first_year = spells.filter(pl.col("ADMIDATE").is_between(date(2024, 4, 1), date(2025, 3, 31)))
    emergency = first_year.filter(pl.col("ADMIMETH").is_in(EMERGENCY)
                                  & pl.col("RESLADST_ONS").is_in(list(per_hwb)))
    rate = 1000 * emergency.height / sum(per_hwb.values())
    assert 70 < rate < 110, rate
    # residence unknown or outside the ICB's HWBs: about 1% each
    res = first_year["RESLADST_ONS"]
    assert 0.005 < (res == "X99999999").mean() < 0.02
    assert 0.005 < (~res.is_in(list(per_hwb) + ["X99999999"])).mean() < 0.02


# ---- the apc month-file rule --------------------------------------------------------------------

def test_every_apc_row_overlaps_its_period_and_is_in_its_end_of_month_state(apc):
    bounds = {p: period_bounds(p) for p in apc["_period"].unique()}
    df = apc.with_columns(
        pl.col("_period").replace_strict({p: s for p, (s, _) in bounds.items()}).alias("_start"),
        pl.col("_period").replace_strict({p: e for p, (_, e) in bounds.items()}).alias("_end"))
    assert df.filter(pl.col("ADMIDATE") > pl.col("_end")).height == 0
    assert df.filter(pl.col("DISDATE") < pl.col("_start")).height == 0
    assert df.filter(pl.col("DISDATE") > pl.col("_end")).height == 0
    assert df.filter(pl.col("DISDATE") < pl.col("ADMIDATE")).height == 0
    assert df.filter(pl.col("DISCHARGE_READY_DATE") > pl.col("_end")).height == 0
    assert (df["PROCODE"] == df["_org"]).all()
    # open spells carry no discharge method other than "not applicable"
    opened = df.filter(pl.col("DISDATE").is_null())
    assert opened.height > 0
    assert set(opened["DISMETH"].drop_nulls().unique()) <= {"8"}
    assert set(opened["DISDEST"].drop_nulls().unique()) <= {"98"}
    # unique key within each file
    dup = df.group_by(["_period", "PROCODE", "PROVSPNO"]).len().filter(pl.col("len") > 1)
    assert dup.height == 0


def test_a_spell_appears_in_consecutive_months_while_open(apc):
    months = sorted(apc["_period"].unique())
    pos = {m: i for i, m in enumerate(months)}
    seen = apc.with_columns(pl.col("_period").replace_strict(pos).alias("_i"))
    per_spell = seen.group_by(["PROCODE", "PROVSPNO"]).agg(
        pl.col("_i").min().alias("lo"), pl.col("_i").max().alias("hi"), pl.len().alias("n"),
        pl.col("DISDATE").sort_by("_i").last().alias("last_dis"),
        pl.col("DISDATE").sort_by("_i").head(pl.len() - 1).is_null().all().alias("open_before"))
    assert per_spell.filter(pl.col("hi") - pl.col("lo") + 1 != pl.col("n")).height == 0
    # every month but the last is sent while the spell is still open
    assert per_spell.filter(~pl.col("open_before")).height == 0
    # a spell open at the end of a month (not the last) is in the next month's file
    last = len(months) - 1
    assert per_spell.filter(pl.col("last_dis").is_null() & (pl.col("hi") < last)).height == 0
    assert per_spell.filter(pl.col("n") >= 3).height > 0     # long stays over 3+ files


def test_discharge_ready_dates_and_delays(apc):
    spells = canonical(apc).filter(pl.col("DISDATE").is_not_null())
    stays = spells.filter(pl.col("DISDATE") > pl.col("ADMIDATE"))
    assert stays["DISCHARGE_READY_DATE"].is_not_null().mean() > 0.7
    ready = spells.filter(pl.col("DISCHARGE_READY_DATE").is_not_null())
    assert ready.filter(pl.col("DISCHARGE_READY_DATE") < pl.col("ADMIDATE")).height == 0
    delay = (ready["DISDATE"] - ready["DISCHARGE_READY_DATE"]).dt.total_days()
    assert (delay >= 0).all()
    assert 0.6 < (delay == 0).mean() < 0.95
    assert delay.max() >= 14


# ---- people ------------------------------------------------------------------------------------

def test_nhs_numbers_are_mostly_valid_and_provspno_is_never_one(apc):
    numbers = apc["NEWNHSNO"].drop_nulls().unique().to_list()
    valid = [nhs_number_valid(n) for n in numbers]
    share = sum(valid) / len(valid)
    assert 0.99 < share < 1.0
    assert nhs_number_valid("9434765919") and not nhs_number_valid("9434765918")
    assert not nhs_number_valid("1111111111")
    # no spell number is, or holds a run of, exactly ten digits
    spno = apc["PROVSPNO"].unique()
    assert spno.str.len_chars().max() <= 20
    assert not spno.str.contains(r"(^|\D)\d{10}($|\D)").any()


def test_emergency_admissions_peak_in_winter_and_patients_are_older(apc):
    spells = canonical(apc)
    em = spells.filter(pl.col("ADMIMETH").is_in(EMERGENCY))
    month = em["ADMIDATE"].dt.month()
    winter = month.is_in([12, 1, 2]).sum() / 6      # two winters in 24 months
    summer = month.is_in([6, 7, 8]).sum() / 6
    assert winter > 1.08 * summer
    age = pl.when(pl.col("STARTAGE").cast(pl.Int64) > 7000).then(0) \
        .otherwise(pl.col("STARTAGE").cast(pl.Int64)).alias("age")
    em_age = em.select(age)["age"].median()
    el_age = spells.filter(pl.col("ADMIMETH").is_in(["11", "12", "13"])).select(age)["age"].median()
    assert em_age > el_age
    infants = set(spells.filter(pl.col("STARTAGE").cast(pl.Int64) > 7000)["STARTAGE"])
    assert {"7001", "7002", "7003", "7007"} <= infants
    assert set(spells["ADMIMETH"]) >= EMERGENCY | {"11", "12", "13", "31", "32", "81", "82"}


def test_readmissions_exist_some_at_another_provider(apc):
    spells = canonical(apc).filter(pl.col("NEWNHSNO").is_not_null())
    dis = spells.filter(pl.col("DISDATE").is_not_null() & (pl.col("DISMETH") != "4")).select(
        "NEWNHSNO", pl.col("PROCODE").alias("p1"), pl.col("PROVSPNO").alias("s1"), "DISDATE")
    em = spells.filter(pl.col("ADMIMETH").is_in(EMERGENCY)).select(
        "NEWNHSNO", pl.col("PROCODE").alias("p2"), pl.col("PROVSPNO").alias("s2"), "ADMIDATE")
    pairs = dis.join(em, on="NEWNHSNO").filter(
        ((pl.col("p1") != pl.col("p2")) | (pl.col("s1") != pl.col("s2")))
        & ((pl.col("ADMIDATE") - pl.col("DISDATE")).dt.total_days().is_between(0, 29)))
    share = pairs.select("p1", "s1").unique().height / dis.height
    assert 0.03 < share < 0.15, share
    assert pairs.filter(pl.col("p1") != pl.col("p2")).height > 0


def test_clinical_content(apc):
    spells = canonical(apc)
    diag = spells["DIAG_4_01"].str.to_uppercase().str.replace_all(r"[.\-]", "") \
        .str.replace(r"X$", "")
    acsc = diag.str.contains(r"^(I50|J44|E1[0-4]|J45|J46|I48|F0[0-3]|I20|I10|G40|R56)")
    em = spells["ADMIMETH"].is_in(EMERGENCY)
    assert 0.04 < (acsc & em).sum() / em.sum() < 0.15
    # falls: injury primary with a W00-W19 code in a secondary position
    secondary = [f"DIAG_4_{i:02d}" for i in range(2, 21)]
    w_code = pl.any_horizontal(pl.col(c).str.to_uppercase().str.contains(r"^W(0\d|1\d)")
                               for c in secondary)
    falls = spells.filter(pl.col("DIAG_4_01").str.contains(r"^[ST]") & w_code
                          & pl.col("ADMIMETH").is_in(EMERGENCY))
    assert falls.height > 500
    # codes come in several written styles
    primary = spells["DIAG_4_01"]
    assert primary.str.contains(r"\.").any()                  # I50.0
    assert primary.str.contains(r"^[A-Z]\d\dX$").any()        # J45X
    assert primary.str.contains(r"^[A-Z]\d\d-$").any()        # S72-
    assert primary.str.contains(r"^[A-Z]\d{3}$").any()        # I500
    # deaths, care homes, usual residence
    died = spells.filter(pl.col("DISMETH") == "4")
    assert set(died["DISDEST"]) == {"79"}
    dest = spells["DISDEST"].drop_nulls()
    assert 0.85 < (dest == "19").mean() < 0.97
    assert set(dest) >= {"19", "29", "51", "54", "55", "56", "65", "79", "85"}
    assert set(spells["SEX"]) >= {"1", "2", "9", "0"}
    assert set(spells["CLASSPAT"]) >= {"1", "2"}


# ---- councils ---------------------------------------------------------------------------------

def test_reablement_status_fills_in_after_91_days(full):
    landing, summary = full
    frames = []
    for path in sorted(landing.glob("reablement_*")):
        period = parse_file_name(path.name).period
        frames.append(read_landing(path).with_columns(pl.lit(period).alias("_period")))
    df = to_dates(pl.concat(frames), "HOSP_DISCHARGE_DATE", "SERVICE_START_DATE")
    end = {p: period_bounds(p)[1] for p in summary.months}
    df = df.with_columns(pl.col("_period").replace_strict(end).alias("_end"))
    due = pl.col("HOSP_DISCHARGE_DATE") + pl.duration(days=91) <= pl.col("_end")
    assert df.filter(pl.col("STATUS_91D").is_not_null() & ~due).height == 0
    start = (pl.col("SERVICE_START_DATE") - pl.col("HOSP_DISCHARGE_DATE")).dt.total_days()
    assert df.select(start.is_between(0, 3).all()).item()
    key = ["LA_CODE", "CLIENT_ID", "HOSP_DISCHARGE_DATE"]
    resent = df.group_by(key).len().filter(pl.col("len") > 1)
    assert resent.height > 0
    final = df.sort("_period").group_by(key).last().filter(pl.col("STATUS_91D").is_not_null())
    older = final.filter(pl.col("AGE").cast(pl.Int64) >= 65)
    assert 0.7 < (older["STATUS_91D"] == "HOME").mean() < 0.92
    assert set(final["STATUS_91D"]) == {"HOME", "CARE_HOME", "HOSPITAL", "DIED", "UNKNOWN"}
    assert df["CLIENT_ID"].str.contains(r"^(MCR|TRF)-\d{6}$").all()
    # an NHS number, or (one council, for a while) an id of the council's own
    assert (df["NEWNHSNO"].is_not_null() | df["PSEUDO_ID"].is_not_null()).mean() > 0.9


def test_care_home_admissions(full):
    landing, summary = full
    df = pl.concat([read_landing(p) for p in sorted(landing.glob("carehome_*"))])
    assert (df["AGE"].cast(pl.Int64) >= 65).mean() > 0.75
    assert set(df["SETTING"]) == {"RESIDENTIAL", "NURSING"}
    assert set(df["PERMANENT"]) == {"Y", "N"}
    assert set(df["FUNDING"]) == {"LA", "SELF", "NHS", "JOINT"}
    assert 0.4 < (df["FUNDING"] == "LA").mean() < 0.75
    pop = pl.read_csv(landing / "population_ONS_2024.csv").filter(pl.col("AGE") >= 65)
    permanent_la = df.filter((pl.col("PERMANENT") == "Y") & (pl.col("FUNDING") == "LA")
                             & (pl.col("AGE").cast(pl.Int64) >= 65)).height
    rate = permanent_la / 2 / pop["POPULATION"].sum() * 100_000     # per year
    assert 300 < rate < 800, rate


# ---- reference files ---------------------------------------------------------------------------

def test_reference_files(full):
    landing, summary = full
    orgs = pl.read_csv(landing / "orgs_all.csv", infer_schema=False)
    assert sorted(orgs["ORG_TYPE"].unique()) == ["HWB", "ICB", "PROVIDER"]
    children = orgs.filter(pl.col("ORG_TYPE") != "ICB")
    assert (children["PARENT_CODE"] == "QOP").all()
    for year in range(2023, 2027):
        pop = pl.read_csv(landing / f"population_ONS_{year}.csv")
        assert pop.height == 2 * 2 * 91
        assert sorted(pop["AGE"].unique()) == list(range(91))
        assert sorted(pop["SEX"].unique()) == [1, 2]
    plans = pl.concat([pl.read_csv(p, infer_schema=False) for p in landing.glob("plan_*")])
    for hwb in summary.hwbs:
        mine = plans.filter(pl.col("AREA_CODE") == hwb)
        assert set(mine["METRIC_ID"]) == set(METRIC_IDS)
        for metric in METRIC_IDS:
            months = set(mine.filter(pl.col("METRIC_ID") == metric)["PERIOD"])
            assert set(summary.months) <= months
    values = plans["PLAN_VALUE"].cast(pl.Float64)
    assert (values > 0).all()
    emergency = plans.filter(pl.col("METRIC_ID") == "emergency_admissions")["PLAN_VALUE"]
    assert emergency.cast(pl.Float64).is_between(400, 1200).all()     # per 100,000 a month
    percent = plans.filter(pl.col("METRIC_ID").is_in(
        ["readmissions_30d", "discharge_to_usual_residence", "long_stay_21plus",
         "discharged_on_ready_date", "reablement_at_home_91d"]))["PLAN_VALUE"]
    assert percent.cast(pl.Float64).is_between(0, 100).all()


# ---- formats and faults -------------------------------------------------------------------------

def test_format_variants_are_present_and_valid(full):
    landing, _ = full
    names = [p.name for p in landing.iterdir()]
    assert any(n.endswith(".csv.gz") for n in names)
    assert any(n.endswith(".parquet") for n in names)
    assert any(n.endswith("_resubmission.csv") for n in names)
    raw = {n: (landing / n).read_bytes() for n in names if n.endswith(".csv")}
    assert any(b.startswith(b"\xef\xbb\xbf") for b in raw.values())
    assert any(b.startswith(b" procode ,") for b in raw.values())
    assert any(re.search(rb",\d{2}/\d{2}/\d{4},", b) for b in raw.values())
    for name in names:
        if name.endswith(".parquet"):
            df = pl.read_parquet(landing / name)
            assert all(t == pl.String for t in df.schema.values())
    # the resubmission changes a few rows of its month
    resub = next(landing.glob("apc_*_resubmission.csv"))
    first = landing / resub.name.replace("_resubmission", "")
    a, b = read_landing(first), read_landing(resub)
    assert 0 < b.height - a.height < 10
    changed = b.fill_null("").join(a.fill_null(""), on=list(b.columns), how="anti")
    assert 0 < changed.height < 20


def test_formats_false_writes_plain_csv_only(tmp_path):
    summary = generate_landing(tmp_path / "l", seed=3, months=2, formats=False)
    assert all(p.name.endswith(".csv") for p in summary.files)
    assert not any("resubmission" in p.name for p in summary.files)
    for p in summary.files:
        assert not p.read_bytes().startswith(b"\xef\xbb\xbf")


def test_faulty_files(tmp_path):
    summary = generate_landing(tmp_path / "l", seed=9, start="2024-04", months=3, faults=True)
    landing = tmp_path / "l"
    bad_names = []
    for path in summary.files:
        try:
            parse_file_name(path.name)
        except FileRejected:
            bad_names.append(path.name)
    assert len(bad_names) >= 2
    unreadable = [p for p in summary.files if "corrupt" in p.name]
    assert {p.suffix for p in unreadable} == {".gz", ".parquet"}
    for p in unreadable:
        with pytest.raises((OSError, EOFError, pl.exceptions.PolarsError)):   # not gzip / not parquet
            read_landing(p)
    missing = landing / "apc_RWW_2024-06_missing_column.csv"
    assert "STARTAGE" not in read_landing(missing).columns
    copies = [p for p in summary.files if "_copy" in p.name]
    assert copies and copies[0].read_bytes() == (landing / "apc_R0A_2024-04.csv").read_bytes()
    # row faults sit among good rows
    host = read_landing(landing / "apc_R0A_2024-05.csv")
    assert host.filter(pl.col("ADMIMETH") == "2E").height == 1
    assert host.filter(pl.col("DISDEST") == "9").height == 1
    assert host.filter(pl.col("STARTAGE") == "150").height == 1
    assert host.filter(pl.col("PROCODE") != "R0A").height >= 1
    assert host.group_by("PROVSPNO").len()["len"].max() >= 2
    lines = (landing / "apc_RM3_2024-05.csv").read_text().splitlines()
    widths = {line.count(",") for line in lines}
    assert len(widths) == 3          # right, too many and too few fields
