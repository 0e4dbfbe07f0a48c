"""A tiny database holding the tables the report reads, made from code (seeded, hand-sized).

Two ICBs: Cornwall and the Isles of Scilly (Cornwall, large; Isles of Scilly, the smallest HWB in
England, whose counts fall in the 1–7 band and must be suppressed), and Greater Manchester
(Trafford). 26 months, four metrics (three with a plan, two with a unit cost). Tables are built
with the same columns as the pipeline's (the contract's section 4, and ARCHITECTURE.md): the figures
go into a `metric_values` table with the contract view's columns, and the report reads them through
the project's own marts over it (`metric_plan_variance` and `metric_spc` from sql/marts/).
"""
from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import duckdb

from flows.db import load_reference_tables

ENGLAND = "E92000001"
FIRST_MONTH = date(2023, 10, 1)
LAST_MONTH = date(2025, 11, 1)
CORNWALL_ICB, GM_ICB = "E54000036", "E54000057"
CORNWALL, SCILLY, TRAFFORD = "E06000052", "E06000053", "E08000009"

ORGS = [
    (CORNWALL_ICB, "ICB", "NHS Cornwall and the Isles of Scilly ICB", None),
    (GM_ICB, "ICB", "NHS Greater Manchester ICB", None),
    (CORNWALL, "HWB", "Cornwall", CORNWALL_ICB),
    (SCILLY, "HWB", "Isles of Scilly", CORNWALL_ICB),
    (TRAFFORD, "HWB", "Trafford", GM_ICB),
    ("REF", "PROVIDER", "Royal Cornwall Hospitals NHS Trust", CORNWALL_ICB),
    ("R0A", "PROVIDER", "Manchester University NHS Foundation Trust", GM_ICB),
]

CATALOG_COLUMNS = ("metric_id", "title", "unit", "higher_is_better", "numerator_label",
                   "denominator_label", "unit_cost", "definition", "official_id", "source",
                   "sql_file", "sort_order", "rollup")
CATALOG = [
    ("emergency_admissions_65plus", "Emergency admissions, people aged 65 and over", "per_100k",
     False, "admissions", "people aged 65 and over", 1613.0,
     "Spells admitted in the month with an emergency admission method, age 65 or over, per "
     "100,000 residents aged 65 and over.", "BCF 2025-26 metric 1", "SUS admitted patient care",
     "sql/metrics/emergency_admissions_65plus.sql", 10, "hwb"),
    ("discharge_to_usual_residence", "Discharges to usual place of residence", "percent", True,
     "discharges to usual residence", "discharges", None,
     "Discharges in the month to the usual place of residence (DISDEST 19), as a percentage of "
     "discharges excluding deaths.", "BCF 2022-25 metric 2", "SUS admitted patient care",
     "sql/metrics/discharge_to_usual_residence.sql", 20, "hwb"),
    ("discharge_delay_days", "Average delay after discharge ready date", "days", False,
     "delayed days", "delayed discharges", 307.0,
     "Days between the discharge ready date and discharge, averaged over discharges delayed by "
     "a day or more.", "BCF 2025-26 metric 2", "SUS admitted patient care",
     "sql/metrics/discharge_delay_days.sql", 30, "hwb"),
    ("reablement_at_home_91d", "Still at home 91 days after reablement", "percent", True,
     "people at home", "people discharged into reablement", None,
     "People aged 65 and over discharged from hospital into reablement who were at home 91 days "
     "later.", "ASCOF 2B(1)", "Local authority client level data",
     "sql/metrics/reablement_at_home_91d.sql", 40, "hwb"),
]
SCALE = {"per_100k": 100_000, "percent": 100, "days": 1}

# Per HWB: 65+ population and the monthly sizes of each metric's counts.
SIZES = {
    CORNWALL: {"pop65": 150_000, "adm": 310, "dis": 4000, "delayed": 300, "reab": 120},
    SCILLY: {"pop65": 600, "adm": 4, "dis": 6, "delayed": 2, "reab": 4},
    TRAFFORD: {"pop65": 42_000, "adm": 85, "dis": 1500, "delayed": 120, "reab": 60},
}
HWB_ICB = {CORNWALL: CORNWALL_ICB, SCILLY: CORNWALL_ICB, TRAFFORD: GM_ICB}
MISSING_DELIVERY = ("R0A", "apc", date(2025, 9, 1))     # makes Trafford's September provisional


def months(first: date = FIRST_MONTH, last: date = LAST_MONTH) -> list[date]:
    out, m = [], first
    while m <= last:
        out.append(m)
        m = date(m.year + m.month // 12, m.month % 12 + 1, 1)
    return out


def _hwb_counts(rng: random.Random, size: dict, i: int) -> dict[str, tuple[float, float]]:
    """(numerator, denominator) per metric for one HWB and month; a gentle upward drift."""
    drift = 1 + 0.004 * i
    adm = max(0, round(size["adm"] * drift * rng.uniform(0.85, 1.15)))
    dis = max(0, round(size["dis"] * rng.uniform(0.9, 1.1)))
    delayed = max(0, round(size["delayed"] * rng.uniform(0.8, 1.2)))
    reab = max(0, round(size["reab"] * rng.uniform(0.8, 1.2)))
    return {
        "emergency_admissions_65plus": (adm, size["pop65"]),
        "discharge_to_usual_residence": (round(dis * rng.uniform(0.86, 0.95)), dis),
        "discharge_delay_days": (round(delayed * rng.uniform(3.0, 5.5)), delayed),
        "reablement_at_home_91d": (round(reab * rng.uniform(0.7, 0.9)), reab),
    }


def _plan(metric_id: str, area: str) -> float | None:
    return {
        "emergency_admissions_65plus": {CORNWALL: 205.0, SCILLY: 700.0, TRAFFORD: 200.0,
                                        CORNWALL_ICB: 205.0, GM_ICB: 200.0},
        "discharge_to_usual_residence": {CORNWALL: 92.0, SCILLY: 92.0, TRAFFORD: 90.0,
                                         CORNWALL_ICB: 92.0, GM_ICB: 90.0},
        "discharge_delay_days": {CORNWALL: 4.0, SCILLY: 4.0, TRAFFORD: 4.5,
                                 CORNWALL_ICB: 4.0, GM_ICB: 4.5},
    }.get(metric_id, {}).get(area)


def metric_rows(seed: int = 42, first: date = FIRST_MONTH) -> list[tuple]:
    """metric_values rows: HWBs, their ICBs (sums) and England (a bigger, noisier sum)."""
    rng = random.Random(seed)
    rows = []
    all_months = months(first)
    for i, month in enumerate(all_months):
        counts = {hwb: _hwb_counts(rng, size, i) for hwb, size in SIZES.items()}
        areas = {hwb: ("hwb", c) for hwb, c in counts.items()}
        for icb in (CORNWALL_ICB, GM_ICB):
            members = [counts[h] for h, parent in HWB_ICB.items() if parent == icb]
            areas[icb] = ("icb", {m: tuple(sum(c[m][k] for c in members) for k in (0, 1))
                                  for m in members[0]})
        areas[ENGLAND] = ("england", {m: (round(n * 41.3 + rng.randint(0, 9)), round(d * 40.9))
                                      for m, (n, d) in areas[CORNWALL_ICB][1].items()})
        for code, (area_type, by_metric) in areas.items():
            for metric_id, (num, den) in by_metric.items():
                rows.append(_row(month, area_type, code, metric_id, num, den,
                                 _status(month, metric_id, code, all_months)))
    return rows


def _row(month, area_type, code, metric_id, num, den, status) -> tuple:
    unit = next(c[2] for c in CATALOG if c[0] == metric_id)
    value = SCALE[unit] * num / den if den else None
    return (month, area_type, code, metric_id, float(num), float(den), value,
            _plan(metric_id, code), status)


def _status(month: date, metric_id: str, code: str, all_months: list[date]) -> str:
    if month == all_months[-1]:
        return "provisional"
    if metric_id == "reablement_at_home_91d" and month >= all_months[-3]:
        return "provisional"          # 91-day follow-up not yet over
    if month == MISSING_DELIVERY[2] and code in (TRAFFORD, GM_ICB) and metric_id != "reablement_at_home_91d":
        return "provisional"
    return "final"


def build(path: Path, *, seed: int = 42, first: date = FIRST_MONTH) -> Path:
    """Create the report's input tables in a fresh DuckDB file at `path`."""
    con = duckdb.connect(str(path))
    try:
        _create(con, seed, first)
    finally:
        con.close()
    return path


def _create(con: duckdb.DuckDBPyConnection, seed: int, first: date) -> None:
    con.execute("create table orgs (org_code varchar, org_type varchar, org_name varchar, parent_code varchar)")
    con.executemany("insert into orgs values (?, ?, ?, ?)", ORGS)
    con.execute("""create table metric_catalog (metric_id varchar, title varchar, unit varchar,
        higher_is_better boolean, numerator_label varchar, denominator_label varchar,
        unit_cost double, definition varchar, official_id varchar, source varchar,
        sql_file varchar, sort_order integer, rollup varchar)""")
    con.executemany(f"insert into metric_catalog values ({', '.join('?' * 13)})", CATALOG)
    # metric_values as a table with the contract view's columns: the report and the real marts
    # read it as they read the view (sql/marts/metric_values.sql) that the pipeline builds.
    con.execute("""create table metric_values (period_month date, area_type varchar,
        area_code varchar, metric_id varchar, numerator double, denominator double,
        value double, plan_value double, status varchar)""")
    con.executemany("insert into metric_values values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    metric_rows(seed, first))
    load_reference_tables(con)   # the code lists (ref_units among them), as the pipeline loads them
    _create_mart(con, "metric_plan_variance")
    _create_spc(con)
    _create_quality(con, first)


# A local change in Cornwall: its discharge-delay chart starts a new period in January 2025.
CHANGES = [(CORNWALL, "discharge_delay_days", date(2025, 1, 1), "Discharge to assess service")]


def _create_mart(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """The project's own view sql/marts/<name>.sql, over this database's tables."""
    from flows import SQL_DIR
    from flows.models.runner import read_model

    con.execute(f"create view {name} as {read_model(Path(SQL_DIR) / 'marts' / f'{name}.sql').sql}")


def _create_spc(con: duckdb.DuckDBPyConnection) -> None:
    """stg_changes as a table, and the real metric_spc view over this database's tables."""
    con.execute("create table stg_changes (area_code varchar, metric_id varchar, "
                "change_month date, description varchar)")
    con.executemany("insert into stg_changes values (?, ?, ?, ?)", CHANGES)
    _create_mart(con, "metric_spc")


def _create_quality(con: duckdb.DuckDBPyConnection, first: date) -> None:
    con.execute("create table deliveries (period_month date, dataset varchar, org_code varchar, received boolean)")
    expected = [("REF", "apc"), ("R0A", "apc")] + [
        (la, ds) for la in (CORNWALL, SCILLY, TRAFFORD) for ds in ("reablement", "carehome")]
    con.executemany("insert into deliveries values (?, ?, ?, ?)", [
        (m, ds, org, (org, ds, m) != MISSING_DELIVERY) for m in months(first) for org, ds in expected])
    con.execute("""create table load_log (file_name varchar, sha256 blob, dataset varchar,
        org_code varchar, period varchar, status varchar, rows_in bigint, rows_loaded bigint,
        rows_quarantined bigint, reason varchar)""")
    con.executemany("insert into load_log values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        ("apc_REF_2025-11.csv", b"\x01" * 32, "apc", "REF", "2025-11", "loaded", 1000, 985, 15, None),
        ("apc_R0A_2025-11.csv", b"\x02" * 32, "apc", "R0A", "2025-11", "loaded", 500, 497, 3, None),
        ("apc_R0A_2025-11.csv", b"\x02" * 32, "apc", "R0A", "2025-11", "duplicate", 0, 0, 0, None),
        ("carehome_E06000053_2025-11.csv", b"\x03" * 32, "carehome", SCILLY, "2025-11",
         "rejected", 4, 0, 4, "missing_columns: ADMISSION_DATE"),
    ])
    con.execute("create table quarantine (file_name varchar, line_number bigint, rule varchar, detail varchar)")
    con.executemany("insert into quarantine values (?, ?, ?, ?)",
                    [("apc_REF_2025-11.csv", i, "disdate_before_admidate", "") for i in range(1, 13)]
                    + [("apc_REF_2025-11.csv", i, "admidate_after_period", "") for i in range(13, 16)]
                    + [("apc_R0A_2025-11.csv", i, "duplicate_key", "") for i in range(1, 4)]
                    + [("carehome_E06000053_2025-11.csv", i, "missing_columns", "") for i in range(1, 5)])
    con.execute("create table data_quality (period_month date, area_code varchar, measure varchar, value bigint)")
    con.executemany("insert into data_quality values (?, ?, ?, ?)", [
        (m, code, measure, value) for m in months(first) for code, measure, value in (
            ("REF", "unknown_residence_spells", 23), ("REF", "invalid_nhs_numbers", 2),
            ("REF", "out_of_area_spells", 41), ("R0A", "unknown_residence_spells", 9),
            ("R0A", "invalid_nhs_numbers", 0), (None, "unknown_residence_spells", 3))])


def add_local_metric(con: duckdb.DuckDBPyConnection, metric_id: str = "falls_admissions_65plus",
                     *, title: str = "Falls admissions, people aged 65 and over",
                     sort_order: int = 25) -> None:
    """A metric added later, by data only: catalog row plus values for every area and month."""
    con.execute(f"insert into metric_catalog values ({', '.join('?' * 13)})", [
        metric_id, title, "per_100k", False, "falls admissions",
        "people aged 65 and over", None, "Emergency spells with an injury diagnosis and a fall cause.",
        "PHOF C29", "SUS admitted patient care", f"sql/metrics/{metric_id}.sql", sort_order, "hwb"])
    con.execute(f"""insert into metric_values
        select period_month, area_type, area_code, '{metric_id}', numerator, denominator,
               value, null, status
        from metric_values where metric_id = 'emergency_admissions_65plus'""")


def add_provider_count_metric(con: duckdb.DuckDBPyConnection, metric_id: str = "ae_attendances") -> None:
    """A provider-level count (no denominator): rows for ICBs and England only, none for HWBs."""
    con.execute(f"insert into metric_catalog values ({', '.join('?' * 13)})", [
        metric_id, "A&E attendances", "count", False, "A&E attendances", "none (a count)", None,
        "Attendances at A&E departments of every type.", "MSitAE", "NHS England A&E CSV",
        f"sql/metrics/{metric_id}.sql", 50, "provider"])
    con.execute(f"""insert into metric_values
        select period_month, area_type, area_code, '{metric_id}', numerator * 9 + 3, null,
               numerator * 9 + 3, null, status
        from metric_values
        where metric_id = 'emergency_admissions_65plus' and area_type in ('icb', 'england')""")


# --- provider-level measures (NHS England's published A&E and discharge statistics) ------------

COMMUNITY_PROVIDER = "RJ8"     # minor injury units only: no type 1 A&E and no discharge sitrep
PROVIDER_ORGS = [(COMMUNITY_PROVIDER, "PROVIDER", "Cornwall Partnership NHS Foundation Trust",
                  CORNWALL_ICB)]
# (metric_id, title, unit, higher_is_better, numerator_label, denominator_label, sort_order),
# as in the headers of sql/metrics/ae_*.sql and nctr_daily_average.sql
PROVIDER_METRICS = [
    ("ae_attendances", "A&E attendances", "count", False, "A&E attendances", "none (a count)", 100),
    ("ae_within_4h_all", "A&E four-hour performance (all types)", "percent", True,
     "attendances within 4 hours", "A&E attendances", 101),
    ("ae_within_4h_type1", "A&E four-hour performance (type 1)", "percent", True,
     "type 1 attendances within 4 hours", "type 1 A&E attendances", 102),
    ("ae_emergency_admissions", "Emergency admissions via A&E", "count", False,
     "emergency admissions via A&E", "none (a count)", 103),
    ("ae_dta_12h", "Waits of 12 hours or more from decision to admit", "count", False,
     "patients waiting 12+ hours from decision to admit", "none (a count)", 104),
    ("nctr_daily_average", "Patients not meeting the criteria to reside (daily average)", "mean",
     False, "patient-days not meeting the criteria to reside", "days with data", 105),
]
# Monthly sizes per provider: attendances, type 1 attendances, 4-hour share, admissions,
# 12-hour waits (REF's are small: published as they are, never suppressed) and NCTR per day.
PROVIDER_SIZES = {
    "REF": (12_000, 7_000, 0.72, 3_100, 3, 85),
    COMMUNITY_PROVIDER: (4_000, 0, 0.97, 0, 0, None),
    "R0A": (30_000, 18_000, 0.70, 8_000, 40, 210),
}


def _provider_counts(rng: random.Random, size: tuple, days: int) -> dict[str, tuple]:
    att, type1, share, adm, dta, nctr = size
    att = round(att * rng.uniform(0.9, 1.1))
    type1 = round(type1 * rng.uniform(0.9, 1.1))
    out = {
        "ae_attendances": (att, None),
        "ae_within_4h_all": (round(att * share * rng.uniform(0.95, 1.03)), att),
        "ae_emergency_admissions": (round(adm * rng.uniform(0.9, 1.1)), None),
        "ae_dta_12h": (dta, None),
    }
    if type1:
        out["ae_within_4h_type1"] = (round(type1 * (share - 0.1) * rng.uniform(0.95, 1.03)), type1)
    if nctr is not None:
        out["nctr_daily_average"] = (round(nctr * days * rng.uniform(0.9, 1.1)), days)
    return out


def add_provider_metrics(con: duckdb.DuckDBPyConnection, seed: int = 7) -> None:
    """The six provider-level measures (catalogue rollup 'provider') for every month: a row per
    provider (REF and RJ8 in Cornwall's ICB, R0A in Greater Manchester's), their ICBs (sums) and
    England; no HWB rows, as the runner's provider roll-up makes them."""
    rng = random.Random(seed)
    con.executemany("insert into orgs values (?, ?, ?, ?)", PROVIDER_ORGS)
    con.executemany(f"insert into metric_catalog values ({', '.join('?' * 13)})", [
        (mid, title, unit, higher, num, den, None, f"{title}, as each provider reported it.",
         "NHS England MSitAE", "NHS England monthly A&E provider CSV", f"sql/metrics/{mid}.sql",
         order, "provider")
        for mid, title, unit, higher, num, den, order in PROVIDER_METRICS])
    parent = {"REF": CORNWALL_ICB, COMMUNITY_PROVIDER: CORNWALL_ICB, "R0A": GM_ICB}
    scale = {"count": 1, "percent": 100, "mean": 1}
    units = {m[0]: m[2] for m in PROVIDER_METRICS}
    rows = []
    all_months = months()
    for month in all_months:
        days = (date(month.year + month.month // 12, month.month % 12 + 1, 1) - month).days
        counts = {p: _provider_counts(rng, size, days) for p, size in PROVIDER_SIZES.items()}
        status = "provisional" if month == all_months[-1] else "final"
        areas = [("provider", p, c) for p, c in counts.items()]
        for icb in (CORNWALL_ICB, GM_ICB):
            members = [c for p, c in counts.items() if parent[p] == icb]
            areas.append(("icb", icb, _sum_counts(members)))
        national = _sum_counts(list(counts.values()))
        areas.append(("england", ENGLAND, {m: (n * 40 + rng.randint(0, 99), d and d * 40)
                                           for m, (n, d) in national.items()}))
        for area_type, code, by_metric in areas:
            for mid, (num, den) in by_metric.items():
                unit = units[mid]
                value = num * scale[unit] if den is None else scale[unit] * num / den
                rows.append((month, area_type, code, mid, float(num),
                             None if den is None else float(den), value, None, status))
    con.executemany("insert into metric_values values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _sum_counts(members: list[dict]) -> dict[str, tuple]:
    out = {}
    for mid in {m for c in members for m in c}:
        pairs = [c[mid] for c in members if mid in c]
        dens = [d for _n, d in pairs if d is not None]
        out[mid] = (sum(n for n, _d in pairs), max(dens) if mid == "nctr_daily_average"
                    else (sum(dens) if dens else None))
    return out
