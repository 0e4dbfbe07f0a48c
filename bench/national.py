"""A country-sized synthetic landing folder for the national benchmark (synthetic data only).

`generate_national(out_dir, seed=.., scale=..)` writes, in the contract's formats
(`spec/extracts.md`), what every acute provider and every council in England would send for
`months` months:

- geography from ONS: the 152 upper-tier local authorities of England (counties, unitary
  authorities, metropolitan districts, London boroughs) are the HWBs, with their mid-2020
  single-year-of-age populations re-based to England's mid-2023 total by age and sex (57.7
  million; `population_ONS_<year>.csv`, one file per mid-year). The HWBs are grouped into 42
  ICBs within their ONS regions (by population; the grouping is synthetic, the codes too) and
  130 acute providers are shared out over the ICBs by population;
- `apc_<PROCODE>_<YYYY-MM>.csv`: at scale 1, 20.5 million spells admitted in 12 months (about
  a twelfth of them emergency admissions of people 65+), each in every monthly file of its
  provider while it is open, in its state at the end of that month (open spells have no
  DISDATE), so about 23 million apc rows;
- `reablement_<HWB>_<YYYY-MM>.csv` (people 65+ discharged into reablement; a row is sent again
  three months later with its 91-day status) and `carehome_<HWB>_<YYYY-MM>.csv` (admissions
  after a hospital discharge and from the community), for every HWB and month;
- `plan_<HWB>_<FY>.csv` for every HWB and financial year touched, and `orgs_all.csv`.

The mess is the sample's (sample/generate.py), in proportions a national collection would see:
about 4% of files gzipped, 2% Parquet, 1% with lower-case padded headers, 1% with a byte-order
mark and CRLF, a few providers writing dates DD/MM/YYYY and ICD-10 codes with dots, 2% of apc
files sent again as `_resubmission` (the first copy short of 2% of its rows), a few byte copies
(duplicates), a few whole files that must be rejected (a missing column, a name that does not
parse, an unreadable .csv.gz), and in the rows: ~0.5% invalid or missing NHS numbers, and
about 4 in 10,000 rows with a bad date, code, age, empty key or required value, or a key
repeated in the file.

Everything is computed by DuckDB SQL from `range(n)` with hash-based draws keyed by the seed, so
a national year takes a minute or two, and the same seed and scale give the same rows. NHS
numbers are synthetic, modulus-11 valid, built from a person index (not the NHS test range,
which is too small for England). `scale` multiplies activity (spells, council rows, plan rates
per 100,000); the geography, populations and file counts stay national at every scale.

`national_landing(seed, scale, ...)` generates once into a cache outside the repository
(`~/.cache/joinedup/`, or `JOINEDUP_BENCH_CACHE`) and reuses it.

    python -m bench.national --scale 0.05 --out /tmp/national     # or without --out: the cache
"""
# ruff: noqa: E501  (SQL reads best one expression per line, however long)
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from flows import ENGLAND_CODE

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("JOINEDUP_SHARED_DATA", ROOT.parent / "shared" / "data"))
ONS_LA = SHARED_DATA / "ons-mye-la-age-2019-2020" / "ONS2020_PopnByAgeYearEstimate.csv"
ONS_UK = SHARED_DATA / "ons-uk-population-2023" / "ons_uk_population_2023.csv"
UPPER_TIER = ("County", "Unitary Authority", "Metropolitan District", "London Borough")
ENGLAND = ENGLAND_CODE

N_ICBS = 42
N_PROVIDERS = 130
SPELLS_PER_YEAR = 20_500_000          # spells admitted in a year at scale 1
PEOPLE_PER_SPELL = 0.45               # distinct people per spell in a year (repeat admissions)
YEARLY_GROWTH = 1.006                 # population growth after mid-2023
HWB_BUCKETS, AGE_BUCKETS = 200_000, 20_000

METRIC_IDS = (
    "emergency_admissions", "emergency_admissions_65plus", "avoidable_admissions",
    "falls_admissions_65plus", "readmissions_30d", "discharge_to_usual_residence",
    "mean_length_of_stay", "long_stay_21plus", "discharged_on_ready_date",
    "discharge_delay_days", "care_home_admissions_65plus", "reablement_at_home_91d",
)
# (monthly plan value at scale 1, its unit is a rate per 100,000: scales with activity)
PLAN_BASE = {
    "emergency_admissions": (1100.0, True), "emergency_admissions_65plus": (3000.0, True),
    "avoidable_admissions": (170.0, True), "falls_admissions_65plus": (190.0, True),
    "readmissions_30d": (9.0, False), "discharge_to_usual_residence": (91.0, False),
    "mean_length_of_stay": (3.2, False), "long_stay_21plus": (3.0, False),
    "discharged_on_ready_date": (70.0, False), "discharge_delay_days": (3.0, False),
    "care_home_admissions_65plus": (45.0, True), "reablement_at_home_91d": (82.0, False),
}

APC_COLUMNS = (
    ["PROCODE", "PROVSPNO", "NEWNHSNO", "STARTAGE", "SEX", "RESLADST_ONS", "GPPRAC", "ADMIDATE",
     "ADMIMETH", "ADMISORC", "CLASSPAT", "DISDATE", "DISMETH", "DISDEST", "DISCHARGE_READY_DATE"]
    + [f"DIAG_4_{i:02d}" for i in range(1, 21)]
)

# Primary diagnoses by kind of spell, written without dots (a few providers add them).
DIAG = {
    "fall": ["S720", "S720", "S721", "S525", "S422", "S066", "S010", "S325", "S223", "T149"],
    "fall_cause": ["W19X", "W19X", "W010", "W18X", "W100", "W06X", "W190"],
    "acsc": ["I500", "I509", "J441", "J440", "J449", "E116", "E101", "J459", "I48X", "F03X",
             "I209", "I10X", "G409", "R568", "D509", "J46X"],
    "injury": ["S610", "S625", "T391", "S018", "S934", "S022"],
    "medical": ["R074", "R104", "J189", "N390", "J22X", "A099", "R55X", "L031", "I214", "I639",
                "N179", "A419", "K801", "R53X", "K566", "E871", "K297", "R060"],
    "elective": ["H259", "K409", "M171", "M161", "C509", "K802", "N40X", "D126", "K210", "C61X",
                 "Z511", "Z511", "Z491", "M751", "N200", "H269"],
    "maternity": ["O800", "O820", "O700", "O420", "O48X", "O342", "O479", "O268"],
    "secondary": ["I10X", "E119", "N183", "I251", "J449", "F03X", "Z867", "E780", "I48X",
                  "E039", "F329", "K219", "M819", "Z741", "D649", "F171", "Z720", "J459", "E669"],
}


def _sql_list(values) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# ---------------------------------------------------------------------------------- geography


@dataclass
class Hwb:
    code: str
    name: str
    region: str
    population: dict[tuple[str, int], int]      # (sex, age) -> people, mid-2023
    icb: int = 0

    @property
    def total(self) -> int:
        return sum(self.population.values())


@dataclass
class Geography:
    hwbs: list[Hwb]
    icbs: list[tuple[str, str]]                  # (code, name)
    providers: list[tuple[str, str, int]]        # (code, name, icb index)


def _number(text: str) -> int:
    return int(text.replace(",", "").strip() or 0)


def load_geography() -> Geography:
    """England's HWBs from ONS, re-based to mid-2023 by age and sex; ICBs and providers."""
    if not ONS_LA.exists() or not ONS_UK.exists():
        raise FileNotFoundError(f"ONS population files not found under {SHARED_DATA} "
                                "(set JOINEDUP_SHARED_DATA to the shared data folder)")
    england_2023: dict[tuple[str, int], float] = {}
    with open(ONS_UK, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Code"] == ENGLAND:
                sex = "1" if row["sex"] == "males" else "2"
                england_2023[(sex, int(row["age"].rstrip("+")))] = float(row["count"])
    hwbs, region, england_2020 = [], "", {}
    with open(ONS_LA, newline="", encoding="latin-1") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        ages = [(i, int(h.rstrip("+"))) for i, h in enumerate(header) if h.rstrip("+").isdigit()]
        for row in rows:
            if not row or not row[0].startswith("E"):
                continue
            if row[0] == ENGLAND:
                england_2020 = {age: _number(row[i]) for i, age in ages}
            elif row[2] == "Region":
                region = row[1].title()
            elif row[2] in UPPER_TIER:
                by_age = {age: _number(row[i]) for i, age in ages}
                hwbs.append(Hwb(row[0], row[1].strip(), region, by_age))   # re-based below
    for hwb in hwbs:
        hwb.population = {(sex, age): round(people * england_2023[(sex, age)] / england_2020[age])
                          for age, people in hwb.population.items() for sex in ("1", "2")}
    icbs = _group_icbs(hwbs)
    providers = _share_providers(hwbs, len(icbs))
    return Geography(hwbs, icbs, providers)


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    """`total` shared in proportion to `weights`, at least one each."""
    raw = [w / sum(weights) * (total - len(weights)) for w in weights]
    counts = [1 + int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True):
        if sum(counts) >= total:
            break
        counts[i] += 1
    return counts


def _group_icbs(hwbs: list[Hwb]) -> list[tuple[str, str]]:
    """42 ICBs: each region's share by population, its HWBs (in ONS order) cut into groups of
    about equal population."""
    regions = list(dict.fromkeys(h.region for h in hwbs))
    per_region = _largest_remainder([sum(h.total for h in hwbs if h.region == r) for r in regions],
                                    N_ICBS)
    icbs: list[tuple[str, str]] = []
    for region, count in zip(regions, per_region):
        members = [h for h in hwbs if h.region == region]
        count = min(count, len(members))
        target = sum(h.total for h in members) / count
        group, filled = 0, 0.0
        for k, hwb in enumerate(members):
            remaining_hwbs, remaining_groups = len(members) - k, count - group
            if (filled >= target * 0.85 and group < count - 1) or remaining_hwbs < remaining_groups:
                group, filled = group + 1, 0.0
            hwb.icb = len(icbs) + group
            filled += hwb.total
        for g in range(count):
            icbs.append((f"Q{chr(65 + len(icbs) // 10)}{len(icbs) % 10}",
                         f"NHS {region} Integrated Care Board {g + 1}"))
    return icbs


def _share_providers(hwbs: list[Hwb], n_icbs: int) -> list[tuple[str, str, int]]:
    weights = [sum(h.total for h in hwbs if h.icb == i) for i in range(n_icbs)]
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUVWXY"
    providers = []
    for icb, count in enumerate(_largest_remainder(weights, N_PROVIDERS)):
        for _ in range(count):
            k = len(providers)
            providers.append((f"R{alphabet[k // len(alphabet)]}{alphabet[k % len(alphabet)]}",
                              f"Synthetic Acute Hospitals NHS Trust {k + 1}", icb))
    return providers


# ---------------------------------------------------------------------------------- generation


@dataclass
class NationalSummary:
    folder: Path
    seed: int
    scale: float
    start: str
    months: int
    files: int = 0
    rows: dict[str, int] = field(default_factory=dict)     # data rows written per dataset
    spells_admitted: int = 0                               # spells admitted in the months
    seconds: float = 0.0
    hwbs: int = 0
    icbs: int = 0
    providers: int = 0
    population: int = 0

    def to_json(self) -> str:
        return json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()},
                          indent=1)


def _month_add(month: date, k: int) -> date:
    index = month.year * 12 + month.month - 1 + k
    return date(index // 12, index % 12 + 1, 1)


def generate_national(out_dir: Path, *, seed: int = 2026, scale: float = 1.0,
                      start: str = "2025-04", months: int = 12,
                      memory_limit: str = "6GB") -> NationalSummary:
    """Write a national landing folder into `out_dir` (emptied first)."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    work = out_dir.parent / f".{out_dir.name}.work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    geo = load_geography()
    first = date.fromisoformat(start + "-01")
    summary = NationalSummary(out_dir, seed, scale, start, months, hwbs=len(geo.hwbs),
                              icbs=len(geo.icbs), providers=len(geo.providers),
                              population=sum(h.total for h in geo.hwbs))
    con = duckdb.connect(str(work / "generate.duckdb"))
    try:
        con.execute(f"set memory_limit = '{memory_limit}'; set temp_directory = '{work / 'spill'}'")
        _geography_tables(con, geo)
        _spells(con, seed, scale, first, months)
        summary.spells_admitted = con.execute(
            "select count(*) from spells where admidate >= ?", [first]).fetchone()[0]
        rng = random.Random(seed)
        styles = _provider_styles(geo, rng)
        summary.rows["apc"] = _write_apc(con, out_dir, work, first, months, styles, seed)
        summary.rows["reablement"] = _write_council(con, out_dir, work, "reablement", first, months, seed)
        summary.rows["carehome"] = _write_council(con, out_dir, work, "carehome", first, months, seed)
        summary.rows["population"] = _write_population(out_dir, geo, first, months)
        summary.rows["plan"] = _write_plans(out_dir, geo, first, months, scale, rng)
        summary.rows["orgs"] = _write_orgs(out_dir, geo)
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
    _mess(out_dir, random.Random(seed + 1))
    summary.files = sum(1 for _ in out_dir.iterdir())
    summary.seconds = round(time.perf_counter() - began, 1)
    return summary


def _geography_tables(con, geo: Geography) -> None:
    """hwb, icb, provider, and bucket tables that turn a uniform draw into an HWB (by
    population) or an age (by population times admission propensity)."""
    total = sum(h.total for h in geo.hwbs)
    people_offset, hwb_rows = 0, []
    for index, hwb in enumerate(geo.hwbs):
        hwb_rows.append((index, hwb.code, hwb.icb, hwb.total, people_offset))
        people_offset += hwb.total
    con.execute("create table hwb (h integer, code varchar, icb integer, pop bigint, first_person bigint)")
    con.executemany("insert into hwb values (?, ?, ?, ?, ?)", hwb_rows)
    con.execute("create table icb (icb integer, first_prov integer, nprov integer)")
    firsts = {}
    for k, (_code, _name, icb) in enumerate(geo.providers):
        firsts.setdefault(icb, [k, 0])[1] += 1
    con.executemany("insert into icb values (?, ?, ?)", [(i, f, n) for i, (f, n) in firsts.items()])
    con.execute("create table provider (pr integer, code varchar)")
    con.executemany("insert into provider values (?, ?)", [(k, p[0]) for k, p in enumerate(geo.providers)])
    # HWB by population share
    cumulative, rows = 0, []
    for index, hwb in enumerate(geo.hwbs):
        lo = round(cumulative / total * HWB_BUCKETS)
        cumulative += hwb.total
        hi = round(cumulative / total * HWB_BUCKETS)
        rows.append((lo, hi, index))
    con.execute("create table hwb_range (lo integer, hi integer, h integer)")
    con.executemany("insert into hwb_range values (?, ?, ?)", rows)
    con.execute("create table hwb_bucket as select b, h from hwb_range, range(lo, hi) t(b)")
    # age at admission: population by age times spells per person per year at that age
    propensity = [(0, .30), (1, .10), (5, .06), (16, .12), (20, .22), (45, .25), (55, .32),
                  (65, .50), (75, .80), (85, 1.15)]
    by_age = [sum(h.population[(s, a)] for h in geo.hwbs for s in ("1", "2")) for a in range(91)]
    weights = []
    for age in range(101):
        rate = [r for lo, r in propensity if age >= lo][-1]
        people = by_age[age] if age < 90 else by_age[90] / 11
        weights.append(people * rate)
    cumulative, rows = 0.0, []
    for age, w in enumerate(weights):
        lo = round(cumulative / sum(weights) * AGE_BUCKETS)
        cumulative += w
        rows.append((lo, round(cumulative / sum(weights) * AGE_BUCKETS), age))
    con.execute("create table age_range (lo integer, hi integer, age integer)")
    con.executemany("insert into age_range values (?, ?, ?)", rows)
    con.execute("create table age_bucket as select b, age from age_range, range(lo, hi) t(b)")


def _spells(con, seed: int, scale: float, first: date, months: int) -> None:
    """Every spell admitted in the months (and in the 90 days before, still open in them)."""
    gen_start = first.toordinal() - 90
    end = _month_add(first, months).toordinal() - 1
    days_in_range = end - first.toordinal() + 1
    admitted = round(SPELLS_PER_YEAR * scale * days_in_range / 365.25)
    total = round(admitted * (end - gen_start + 1) / days_in_range)
    people_per_hwb = PEOPLE_PER_SPELL * SPELLS_PER_YEAR * scale / con.execute(
        "select sum(pop) from hwb").fetchone()[0]
    con.execute(f"create macro u(i, k) as (hash(i, k, {seed}) % 1000000007)::double / 1000000007")
    emergency = ("case when x < .72 then '21' when x < .82 then '22' when x < .825 then '23' "
                 "when x < .855 then '24' when x < .86 then '25' when x < .89 then '2A' "
                 "when x < .905 then '2B' when x < .91 then '2C' when x < .99 then '2D' else '28' end")

    def pick(name: str, draw: str) -> str:
        values = DIAG[name]
        return f"{_sql_list(values)}[1 + floor({draw} * {len(values)})::integer]"

    con.execute(f"""
        create table drawn as
        select i, hb.h, ab.age,
               u(i, 3) as uk, u(i, 4) as usex, u(i, 5) as ulos,
               date '0001-01-01' + ({gen_start} - 1 + floor(u(i, 6) * {end - gen_start + 1}))::integer as admidate
        from range({total}) r(i)
        join hwb_bucket hb on hb.b = floor(u(i, 1) * {HWB_BUCKETS})::integer
        join age_bucket ab on ab.b = floor(u(i, 2) * {AGE_BUCKETS})::integer
    """)
    con.execute(f"""
        create table spells as
        with k as (
            select *,
                   case when age between 16 and 44 and usex >= 0.5 and uk < 0.14 then 'M'
                        when uk < 0.40 then 'E' else 'L' end as kind,
                   case when usex < 0.0008 then '9' when usex < 0.49 then '1' else '2' end as sex
            from drawn
        ),
        c as (
            select *,
                   case when kind = 'L' and u(i, 7) < 0.68 then '2' else '1' end as classpat,
                   kind = 'E' and u(i, 8) < case when age >= 75 then 0.045 when age >= 65 then 0.02
                                                 else 0.003 end as died,
                   case when kind = 'E' then u(i, 12) end as ucat
            from k
        ),
        l as (
            select *,
                   case when classpat = '2' then 0
                        when kind = 'E' then least(400, floor(-ln(1 - ulos) * (1.2 + greatest(age - 40, 0) / 7.0)))
                        when kind = 'L' then least(120, floor(-ln(1 - ulos) * 2.5))
                        else least(30, floor(-ln(1 - ulos) * 1.5)) end::integer as los,
                   case when kind = 'E' and age >= 65 and ucat < 0.09 then 'fall'
                        when kind = 'E' and ucat < 0.25 then 'acsc'
                        when kind = 'E' and ucat < 0.30 then 'injury'
                        when kind = 'E' then 'medical'
                        when kind = 'L' then 'elective' else 'maternity' end as category
            from c
        )
        select l.i, l.h, l.age, l.sex, l.kind, l.classpat, l.admidate, l.admidate + l.los as disdate,
               l.los, l.died,
               case when l.kind = 'E' then (with x as (select u(l.i, 9) as x) select {emergency} from x)
                    when l.kind = 'L' then case when u(l.i, 9) < 0.7 then '11' when u(l.i, 9) < 0.8 then '12' else '13' end
                    else case when u(l.i, 9) < 0.8 then '31' else '32' end end as admimeth,
               case when l.died then '79'
                    when l.kind = 'E' and l.age >= 75 and u(l.i, 10) < 0.07 then ['54', '65', '85'][1 + floor(u(l.i, 11) * 3)::integer]
                    when u(l.i, 10) < 0.93 then '19' when u(l.i, 10) < 0.96 then '29'
                    when u(l.i, 10) < 0.98 then '51' else '99' end as disdest,
               case when l.died then '4' when u(l.i, 13) < 0.95 then '1' when u(l.i, 13) < 0.99 then '2' else '3' end as dismeth,
               case when l.kind = 'E' and l.los >= 2 and u(l.i, 14) < 0.85
                    then l.admidate + l.los - case when u(l.i, 15) < 0.65 then 0
                         else least(floor(-ln(1 - u(l.i, 16)) * 3)::integer + 1, l.los) end end as ready,
               case l.category when 'fall' then {pick('fall', 'u(l.i, 17)')}
                    when 'acsc' then {pick('acsc', 'u(l.i, 17)')}
                    when 'injury' then {pick('injury', 'u(l.i, 17)')}
                    when 'medical' then {pick('medical', 'u(l.i, 17)')}
                    when 'elective' then {pick('elective', 'u(l.i, 17)')}
                    else {pick('maternity', 'u(l.i, 17)')} end as diag1,
               case when l.category = 'fall' then {pick('fall_cause', 'u(l.i, 18)')} end as fall_cause,
               floor(u(l.i, 19) * case when l.age >= 65 then 7 else 3 end)::integer as n_sec,
               hwb.first_person + floor(u(l.i, 20) * greatest(1, hwb.pop * {people_per_hwb}))::bigint as person,
               icb.first_prov + floor(u(l.i, 21) * icb.nprov)::integer as pr,
               case when l.kind = 'E' and l.age >= 75 then '51' when u(l.i, 22) < 0.02 then '54' else '19' end as admisorc
        from l
        join hwb on hwb.h = l.h
        join icb on icb.icb = case when u(l.i, 23) < 0.07 then (hwb.icb + 1) % {N_ICBS} else hwb.icb end
        where l.admidate + l.los >= date '{first}'
    """)
    con.execute("drop table drawn")
    # The NHS number of a person: a 9-digit stem and its modulus-11 check digit; a stem whose
    # check digit would be 10 is never issued, so its neighbour is used.
    weights = " + ".join(f"((s // {10 ** (8 - d)}) % 10) * {10 - d}" for d in range(9))
    con.execute(f"""
        create macro nhs_check(s) as (11 - ({weights}) % 11) % 11;
        create macro nhs_number(p) as (
            with stem as (select 400000000 + p * 10 as s0)
            select case when nhs_check(s0) = 10 then (s0 + 1) * 10 + nhs_check(s0 + 1)
                        else s0 * 10 + nhs_check(s0) end from stem)::varchar
    """)


@dataclass
class _Style:
    ddmmyyyy: bool
    dotted: bool
    open_blank: bool        # DISMETH / DISDEST empty (not 8 / 98) while the spell is open


def _provider_styles(geo: Geography, rng: random.Random) -> dict[str, _Style]:
    return {code: _Style(rng.random() < 0.04, rng.random() < 0.15, rng.random() < 0.3)
            for code, _name, _icb in geo.providers}


def _date_text(expr: str, ddmm: str) -> str:
    return f"case when {ddmm} then strftime({expr}, '%d/%m/%Y') else strftime({expr}, '%Y-%m-%d') end"


def _write_partitioned(con, select: str, work: Path, out_dir: Path, dataset: str,
                       columns: list[str]) -> dict[tuple[str, str], Path]:
    """COPY a query partitioned by (org, period) into `<dataset>_<org>_<period>.csv` files.

    Rows are ordered in each file by `ord`, so the same seed gives the same bytes."""
    target = work / dataset
    con.execute(f"""
        copy (select {', '.join(f'"{c}"' for c in columns)}, part_org, part_month
              from ({select}) order by part_org, part_month, ord)
        to '{target}' (format csv, header, partition_by (part_org, part_month),
                       write_partition_columns false)
    """)
    written = {}
    for folder in sorted(target.glob("part_org=*/part_month=*")):
        org = folder.parent.name.split("=", 1)[1]
        month = folder.name.split("=", 1)[1]
        parts = sorted(folder.glob("*.csv"))
        path = out_dir / f"{dataset}_{org}_{month}.csv"
        if len(parts) == 1:
            shutil.move(parts[0], path)
        else:     # one file per writer thread: rejoin them, one header, in row order
            _rejoin(parts, path)
        written[(org, month)] = path
    shutil.rmtree(target)
    return written


def _rejoin(parts: list[Path], path: Path) -> None:
    with open(path, "wb") as out:
        for k, part in enumerate(parts):
            with open(part, "rb") as src:
                if k:
                    src.readline()
                shutil.copyfileobj(src, out)


def _columns_of(path: Path) -> dict[str, str]:
    with open(path, newline="") as handle:
        return {c: "VARCHAR" for c in next(csv.reader(handle))}


def _write_apc(con, out_dir: Path, work: Path, first: date, months: int,
               styles: dict[str, _Style], seed: int) -> int:
    last = _month_add(first, months - 1)
    con.execute("create table style (code varchar, ddmm boolean, dotted boolean, open_blank boolean)")
    con.executemany("insert into style values (?, ?, ?, ?)",
                    [(c, s.ddmmyyyy, s.dotted, s.open_blank) for c, s in styles.items()])
    dotted = ("case when st.dotted and length({0}) = 4 and right({0}, 1) <> 'X' "
              "then left({0}, 3) || '.' || right({0}, 1) else {0} end")
    secondary = [f"case when s.n_sec >= {k - 1} then "
                 f"{_sql_list(DIAG['secondary'])}[1 + floor(u(s.i, {40 + k}) * {len(DIAG['secondary'])})::integer] end"
                 for k in range(2, 21)]
    diag_cols = [f"{dotted.format('s.diag1')} as DIAG_4_01",
                 f"coalesce(s.fall_cause, {secondary[0]}) as DIAG_4_02"]
    diag_cols += [f"{secondary[k - 2]} as DIAG_4_{k:02d}" for k in range(3, 21)]
    dd = "st.ddmm"
    fault = "u(s.i * 100 + month(s.file_month) + 12 * year(s.file_month), 90)"
    select = f"""
        with r as (
            select s.*, unnest(generate_series(date_trunc('month', s.admidate),
                                               least(date_trunc('month', s.disdate), date '{last}'),
                                               interval 1 month))::date as file_month
            from spells s
        ),
        rows as (
            select s.*, last_day(s.file_month) as month_end,
                   {fault} as f, p.code as procode, hwb.code as hwb_code
            from r as s join provider p on p.pr = s.pr join hwb on hwb.h = s.h
            where s.file_month >= date '{first}'
        ),
        doubled as (
            select *, 0 as copy from rows
            union all select *, 1 from rows where f >= 0.9999     -- a key repeated in the file
        )
        select case when f between 0.00045 and 0.00047 then 'RXX' else s.procode end as PROCODE,
               case when f between 0.0003 and 0.00035 then '' else 'S' || lpad(s.i::varchar, 9, '0') end as PROVSPNO,
               case when f between 0.001 and 0.005 then left(nhs_number(s.person), 9)
                         || ((right(nhs_number(s.person), 1)::integer + 1) % 10)::varchar
                    when f between 0.005 and 0.006 then ''
                    else nhs_number(s.person) end as NEWNHSNO,
               case when f between 0.0002 and 0.0003 then '150'
                    when s.age = 0 and u(s.i, 24) < 0.5 then (7001 + floor(u(s.i, 25) * 7))::integer::varchar
                    else s.age::varchar end as STARTAGE,
               s.sex as SEX, s.hwb_code as RESLADST_ONS,
               chr(65 + s.h % 26) || lpad((s.h * 37 + floor(u(s.i, 26) * 30))::integer::varchar, 5, '0') as GPPRAC,
               case when f < 0.0001 then '{first.year}-02-30' else {_date_text('s.admidate', dd)} end as ADMIDATE,
               case when f between 0.0001 and 0.0002 then '2E' else s.admimeth end as ADMIMETH,
               s.admisorc as ADMISORC, s.classpat as CLASSPAT,
               case when s.disdate <= s.month_end then {_date_text('s.disdate', dd)} end as DISDATE,
               case when s.disdate <= s.month_end then s.dismeth when st.open_blank then null else '8' end as DISMETH,
               case when s.disdate <= s.month_end then s.disdest when st.open_blank then null else '98' end as DISDEST,
               case when s.ready <= s.month_end then {_date_text('s.ready', dd)} end as DISCHARGE_READY_DATE,
               {', '.join(diag_cols).replace('s.diag1', "case when f between 0.0004 and 0.00045 then '' else s.diag1 end")},
               s.procode as part_org, strftime(s.file_month, '%Y-%m') as part_month,
               s.i * 2 + s.copy as ord
        from doubled s join style st on st.code = s.procode
    """
    written = _write_partitioned(con, select, work, out_dir, "apc", APC_COLUMNS)
    return _count_rows(con, list(written.values()))


def _count_rows(con, paths: list[Path]) -> int:
    """Data rows in the CSV files written (lines after the header; no field holds a newline)."""
    rows = 0
    for path in paths:
        with open(path, "rb") as handle:
            rows += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1
    return rows


COUNCIL_COLUMNS = {
    "reablement": ["LA_CODE", "CLIENT_ID", "NEWNHSNO", "AGE", "HOSP_DISCHARGE_DATE",
                   "SERVICE_START_DATE", "STATUS_91D"],
    "carehome": ["LA_CODE", "CLIENT_ID", "NEWNHSNO", "AGE", "ADMISSION_DATE", "SETTING",
                 "PERMANENT", "FUNDING"],
}


def _write_council(con, out_dir: Path, work: Path, dataset: str, first: date, months: int,
                   seed: int) -> int:
    last = _month_add(first, months - 1)
    client = "upper(left(hwb.code, 1)) || 'C' || lpad((s.person - hwb.first_person)::varchar, 8, '0')"
    bad_nhs = ("case when u(s.i, 70) < 0.004 then '' else nhs_number(s.person) end")
    if dataset == "reablement":
        status = ("case when u(r.i, 31) < 0.80 then 'HOME' when u(r.i, 31) < 0.85 then 'CARE_HOME' "
                  "when u(r.i, 31) < 0.93 then 'HOSPITAL' when u(r.i, 31) < 0.97 then 'DIED' else 'UNKNOWN' end")
        select = f"""
            with r as (
                select s.*, date_trunc('month', s.disdate)::date as dmonth from spells s
                where s.kind = 'E' and s.age >= 65 and not s.died and u(s.i, 30) < 0.05
                  and s.disdate <= last_day(date '{last}')
            ),
            sent as (      -- first when discharged, with no status; again three months later
                select r.*, dmonth as file_month, cast(null as varchar) as status from r
                union all
                select r.*, (dmonth + interval 3 month)::date, {status} from r
            )
            select hwb.code as LA_CODE, {client} as CLIENT_ID, {bad_nhs} as NEWNHSNO,
                   s.age::varchar as AGE, strftime(s.disdate, '%Y-%m-%d') as HOSP_DISCHARGE_DATE,
                   strftime(s.disdate + floor(u(s.i, 32) * 4)::integer, '%Y-%m-%d') as SERVICE_START_DATE,
                   s.status as STATUS_91D, hwb.code as part_org,
                   strftime(s.file_month, '%Y-%m') as part_month, s.i * 2 + (s.status is not null)::integer as ord
            from sent s join hwb on hwb.h = s.h
            where s.file_month between date '{first}' and date '{last}'
        """
    else:
        community = con.execute("select count(*) from spells where kind = 'E' and age >= 75 "
                                "and disdest in ('54', '65', '85')").fetchone()[0]
        funding = ("case when u(s.i, 35) < 0.6 then 'LA' when u(s.i, 35) < 0.9 then 'SELF' "
                   "when u(s.i, 35) < 0.95 then 'NHS' else 'JOINT' end")
        select = f"""
            with after_hospital as (
                select i, h, age, person, s.disdate + floor(u(i, 33) * 10)::integer as admitted
                from spells s where kind = 'E' and age >= 75 and disdest in ('54', '65', '85')
            ),
            from_community as (
                select -1 - i as i, hb.h, 65 + floor(u(-1 - i, 36) * 36)::integer as age,
                       hwb.first_person + floor(u(-1 - i, 37) * hwb.pop * {PEOPLE_PER_SPELL}
                                                * {SPELLS_PER_YEAR} / 57700000.0 * 0.99)::bigint as person,
                       (select min(admidate) from spells) + floor(u(-1 - i, 38) * (
                           (select max(admidate) from spells) - (select min(admidate) from spells)))::integer as admitted
                from range({community}) r(i)
                join hwb_bucket hb on hb.b = floor(u(-1 - i, 39) * {HWB_BUCKETS})::integer
                join hwb on hwb.h = hb.h
            ),
            rows as (
                select *, (date_trunc('month', admitted)
                           + case when u(i, 34) < 0.04 then interval 1 month else interval 0 month end)::date as file_month
                from (select * from after_hospital union all select * from from_community)
            )
            select hwb.code as LA_CODE, {client} as CLIENT_ID, {bad_nhs} as NEWNHSNO,
                   s.age::varchar as AGE, strftime(s.admitted, '%Y-%m-%d') as ADMISSION_DATE,
                   case when u(s.i, 40) < 0.55 then 'RESIDENTIAL' else 'NURSING' end as SETTING,
                   case when u(s.i, 41) < 0.75 then 'Y' else 'N' end as PERMANENT,
                   {funding} as FUNDING, hwb.code as part_org,
                   strftime(s.file_month, '%Y-%m') as part_month, s.i as ord
            from rows s join hwb on hwb.h = s.h
            where s.file_month between date '{first}' and date '{last}'
        """
    columns = COUNCIL_COLUMNS[dataset]
    written = _write_partitioned(con, select, work, out_dir, dataset, columns)
    # every council sends a return every month, if only its header
    for (code,) in con.execute("select code from hwb order by h").fetchall():
        for k in range(months):
            period = f"{_month_add(first, k):%Y-%m}"
            if (code, period) not in written:
                path = out_dir / f"{dataset}_{code}_{period}.csv"
                path.write_text(",".join(columns) + "\n")
                written[(code, period)] = path
    return _count_rows(con, list(written.values()))


def _write_population(out_dir: Path, geo: Geography, first: date, months: int) -> int:
    last = _month_add(first, months - 1)
    rows = 0
    for year in range(first.year - 1, last.year + 1):
        growth = YEARLY_GROWTH ** (year - 2023)
        with open(out_dir / f"population_ONS_{year}.csv", "w", newline="") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(["AREA_CODE", "YEAR", "SEX", "AGE", "POPULATION"])
            for hwb in geo.hwbs:
                for (sex, age), people in sorted(hwb.population.items()):
                    out.writerow([hwb.code, year, sex, age, round(people * growth)])
                    rows += 1
    return rows


def _write_plans(out_dir: Path, geo: Geography, first: date, months: int, scale: float,
                 rng: random.Random) -> int:
    fy_starts = sorted({_month_add(first, k).year - (_month_add(first, k).month < 4) for k in range(months)})
    rows = 0
    for hwb in geo.hwbs:
        level = {m: 0.85 + 0.3 * rng.random() for m in METRIC_IDS}
        for fy in fy_starts:
            with open(out_dir / f"plan_{hwb.code}_{fy}-{(fy + 1) % 100:02d}.csv", "w", newline="") as handle:
                out = csv.writer(handle, lineterminator="\n")
                out.writerow(["AREA_CODE", "METRIC_ID", "PERIOD", "PLAN_VALUE"])
                for metric in METRIC_IDS:
                    base, per_100k = PLAN_BASE[metric]
                    for k in range(12):
                        month = date(fy + (3 + k) // 12, (3 + k) % 12 + 1, 1)
                        value = base * level[metric] * (scale if per_100k else 1)
                        value *= 1 + 0.08 * (month.month in (12, 1, 2)) if per_100k else 1
                        out.writerow([hwb.code, metric, f"{month:%Y-%m}", f"{value:.2f}"])
                        rows += 1
    return rows


def _write_orgs(out_dir: Path, geo: Geography) -> int:
    with open(out_dir / "orgs_all.csv", "w", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["ORG_CODE", "ORG_TYPE", "ORG_NAME", "PARENT_CODE"])
        rows = [(code, "ICB", name, "") for code, name in geo.icbs]
        rows += [(h.code, "HWB", h.name, geo.icbs[h.icb][0]) for h in geo.hwbs]
        rows += [(code, "PROVIDER", name, geo.icbs[icb][0]) for code, name, icb in geo.providers]
        out.writerows(rows)
    return len(rows)


# ---------------------------------------------------------------------------------- the mess


def _mess(out_dir: Path, rng: random.Random) -> None:
    """Odd formats, resubmissions, duplicates and rejected files, in national proportions."""
    periodic = sorted(p for p in out_dir.iterdir()
                      if p.name.split("_")[0] in ("apc", "reablement", "carehome")
                      and p.stat().st_size > 200)
    apc = [p for p in periodic if p.name.startswith("apc_")]
    for path in rng.sample(apc, max(1, len(apc) // 50)):
        _resubmit(path)
    plain = [p for p in sorted(out_dir.iterdir()) if p.suffix == ".csv"
             and p.name.split("_")[0] in ("apc", "reablement", "carehome")
             and "_resubmission" not in p.name and p.stat().st_size > 200]
    rng.shuffle(plain)
    shares = [("gz", 0.04), ("parquet", 0.02), ("header", 0.01), ("bom", 0.01)]
    taken = 0
    for variant, share in shares:
        count = max(1, round(len(plain) * share))
        for path in plain[taken:taken + count]:
            _restyle(path, variant)
        taken += count
    for path in plain[taken:taken + 3]:          # byte copies sent twice: duplicates
        shutil.copyfile(path, path.with_name(path.stem + "_copy.csv"))
    _rejected_files(out_dir, sorted(apc)[0], sorted(p for p in periodic if "carehome_" in p.name)[0])


def _resubmit(path: Path) -> None:
    """The first copy was short of 2% of its rows; the resubmission is complete."""
    resubmission = path.with_name(path.stem + "_resubmission.csv")
    shutil.copyfile(path, resubmission)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1] + [line for k, line in enumerate(lines[1:]) if k % 50 != 7]))


def _restyle(path: Path, variant: str) -> None:
    if variant == "gz":
        with open(path, "rb") as src, gzip.GzipFile(path.with_suffix(".csv.gz"), "wb",
                                                     compresslevel=1, mtime=0) as dst:
            shutil.copyfileobj(src, dst)
    elif variant == "parquet":
        duckdb.execute(f"copy (select * from read_csv('{path}', all_varchar = true, header = true, "
                       f"auto_detect = false, columns = {_columns_of(path)})) "
                       f"to '{path.with_suffix('.parquet')}' (format parquet)")
    else:
        text = path.read_text()
        header, rest = text.split("\n", 1)
        if variant == "header":
            text = ",".join(f" {c.lower()} " for c in header.split(",")) + "\n" + rest
            path.write_text(text)
        else:
            path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
        return
    path.unlink()


def _rejected_files(out_dir: Path, apc: Path, carehome: Path) -> None:
    """Whole files the loader must reject, and that change nothing else."""
    lines = apc.read_text().splitlines()
    header = lines[0].split(",")
    drop = header.index("ADMIMETH")
    body = [",".join(v for k, v in enumerate(line.split(",")) if k != drop) for line in lines[:200]]
    (out_dir / apc.name.replace(".csv", "_nomethod.csv")).write_text("\n".join(body) + "\n")
    # not the bytes of any file sent (that would make it a duplicate): the header and some rows
    (out_dir / "APC extract March FINAL.csv").write_text("\n".join(lines[:1] + lines[2:50]) + "\n")
    (out_dir / carehome.name.replace(".csv", "_late.csv.gz")).write_bytes(b"not gzip at all\n")


# ---------------------------------------------------------------------------------- the cache


def cache_root() -> Path:
    return Path(os.environ.get("JOINEDUP_BENCH_CACHE", Path.home() / ".cache" / "joinedup"))


def scale_label(scale: float) -> str:
    return "1" if scale == 1 else f"{scale:g}".replace(".", "p")


def national_landing(*, seed: int = 2026, scale: float = 1.0, start: str = "2025-04",
                     months: int = 12, log=print) -> tuple[Path, NationalSummary]:
    """The landing folder for these arguments, generated on first use and kept in the cache.

    A folder is reused only when its manifest (written last) says it is complete."""
    folder = cache_root() / f"national-{seed}-{scale_label(scale)}-{start}-{months}m"
    manifest = folder / ".manifest.json"
    if manifest.exists():
        data = json.loads(manifest.read_text())
        return folder, NationalSummary(**{**data, "folder": folder})
    log(f"generating the national landing folder (seed {seed}, scale {scale:g}, {months} months "
        f"from {start}) into {folder} ...")
    summary = generate_national(folder, seed=seed, scale=scale, start=start, months=months)
    manifest.write_text(summary.to_json())
    log(f"  {summary.files} files, {summary.rows.get('apc', 0):,} apc rows, "
        f"{summary.spells_admitted:,} spells admitted, in {summary.seconds:.0f}s")
    return folder, summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--scale", type=float, default=1.0, help="1 = England; 0.05 = 1/20")
    parser.add_argument("--start", default="2025-04")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--out", type=Path, help="write here instead of the cache")
    args = parser.parse_args(argv)
    if args.out:
        summary = generate_national(args.out, seed=args.seed, scale=args.scale,
                                    start=args.start, months=args.months)
        print(summary.to_json())
    else:
        folder, summary = national_landing(seed=args.seed, scale=args.scale, start=args.start,
                                           months=args.months)
        print(folder)


if __name__ == "__main__":
    main()
