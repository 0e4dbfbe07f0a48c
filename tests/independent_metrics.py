"""A second, independent reading of the metric contract (`spec/extracts.md` sections 2, 3 and 3a),
in Polars, to check the SQL models' `metric_values` against.

`compute_metric_values(con)` reads the loaded rows of the raw tables (rows of files whose
`files.status = 'loaded'`) and returns one row per (period_month, area_type, area_code, metric_id)
for the twelve section 3 metrics and the three section 3a linked metrics, for every month loaded,
every HWB in `orgs`, every ICB in `orgs` (the sum of its HWBs) and England (all HWBs):
numerator, denominator, value and plan_value. Provider-level measures and `status` are not here.

Nothing in this module reads the project's SQL. Where the contract is silent, the choice made is
written next to the code that makes it (and collected in `CHOICES`), so a difference from the SQL
can be read as either a bug or a different reading.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import polars as pl

ENGLAND = "E92000001"
UNKNOWN_RESIDENCE = "X99999999"

# ------------------------------------------------------------------ code lists (contract s3; domain reference s1.3)

# Emergency ADMIMETH (contract s3, precise rules): 2B included except where transfers are excluded.
EMERGENCY = frozenset({"21", "22", "23", "24", "25", "2A", "2B", "2C", "2D", "28"})
TRANSFERS = frozenset({"2B", "81"})
DEATH_DISMETH = frozenset({"4", "5"})
DEATH_DISDEST = "79"
NOT_APPLICABLE_DISDEST = frozenset({"98", "99"})
USUAL_RESIDENCE_DISDEST = "19"

# Chronic ambulatory care sensitive conditions, domain reference s1.3.2 (prefixes after normalising).
CHRONIC_ACSC = (
    "B180", "B181",                                  # chronic viral hepatitis B
    "D501", "D508", "D509",                          # iron-deficiency anaemia
    "E10", "E11", "E12", "E13", "E14",               # diabetes
    "F00", "F01", "F02", "F03", "G30",               # dementia
    "G40", "G41", "O15", "R56",                      # convulsions and epilepsy
    "I110", "I50", "J81",                            # congestive heart failure
    "I20", "I25",                                    # angina
    "I10", "I119",                                   # hypertension
    "I48",                                           # atrial fibrillation and flutter
    "J41", "J42", "J43", "J44", "J47",               # COPD
    "J45", "J46",                                    # asthma
)
# J20 (acute bronchitis) counts only with a COPD code in a secondary position (s1.3.2).
J20_PRIMARY = "J20"
J20_SECONDARY = ("J41", "J42", "J43", "J44", "J47")

# Falls (s1.3.3): primary diagnosis S00-T98 and a W00-W19 code in DIAG_4_02..20.
INJURY = frozenset([f"S{i:02d}" for i in range(100)] + [f"T{i:02d}" for i in range(99)])
FALLS = frozenset(f"W{i:02d}" for i in range(20))

SECONDARY_DIAGS = tuple(f"diag_4_{i:02d}" for i in range(2, 21))

# ------------------------------------------------------------------ metrics

RATE, PERCENT, DAYS = "rate", "percent", "days"


@dataclass(frozen=True)
class Metric:
    metric_id: str
    unit: str                     # RATE (per 100,000), PERCENT or DAYS
    population: str | None = None  # "all" or "65plus" for rates: the denominator


METRICS = (
    Metric("emergency_admissions", RATE, "all"),
    Metric("emergency_admissions_65plus", RATE, "65plus"),
    Metric("avoidable_admissions", RATE, "all"),
    Metric("falls_admissions_65plus", RATE, "65plus"),
    Metric("readmissions_30d", PERCENT),
    Metric("discharge_to_usual_residence", PERCENT),
    Metric("mean_length_of_stay", DAYS),
    Metric("long_stay_21plus", PERCENT),
    Metric("discharged_on_ready_date", PERCENT),
    Metric("discharge_delay_days", DAYS),
    Metric("care_home_admissions_65plus", RATE, "65plus"),
    Metric("reablement_at_home_91d", PERCENT),
    Metric("reablement_after_discharge_65plus", PERCENT),
    Metric("carehome_after_discharge_65plus", PERCENT),
    Metric("readmission_after_reablement_91d", PERCENT),
)
METRIC_IDS = tuple(m.metric_id for m in METRICS)

# Where the contract is silent (or could be read two ways): what this implementation does.
CHOICES = {
    "latest row": "a spell's canonical row (and a council row's current one) is the row from the "
                  "loaded file with the latest files.period, then the latest loaded_at, then the "
                  "highest file_id (the order files were loaded in)",
    "months": "the months loaded are the distinct files.period of loaded apc, reablement and "
              "carehome files",
    "population year": "per HWB, the latest mid-year estimate whose YEAR is at or before the "
                       "calendar year of the month; a HWB with none has a NULL population, and "
                       "an ICB or England with any such HWB has a NULL population too",
    "65+ population": "the sum of AGE >= 65 (AGE 90 = 90 and over), both sexes; an estimate "
                      "with no row aged 65+ gives 0",
    "empty DISDEST": "a discharge with no DISDEST stays in discharge_to_usual_residence's "
                     "denominator (only deaths and 98/99 are excluded)",
    "deaths and ready date": "discharged_on_ready_date and discharge_delay_days count every "
                             "discharge, deaths included (the contract excludes deaths only "
                             "where it says so)",
    "numerator within denominator": "discharge_to_usual_residence's numerator is DISDEST 19 "
                                    "among the denominator's discharges (a death coded 19 is "
                                    "in neither)",
    "another spell": "a readmission is another canonical spell (a different PROCODE, PROVSPNO) "
                     "of the same person_id",
    "council area": "care_home_admissions_65plus, reablement_at_home_91d and "
                    "readmission_after_reablement_91d count a council row in the HWB equal to "
                    "its LA_CODE",
    "ICB": "ICBs are the orgs rows of ORG_TYPE ICB that are the PARENT_CODE of at least one "
           "HWB row (an ICB with no HWB has no residents to sum and no cells); a HWB whose "
           "PARENT_CODE is no ICB in orgs counts in England only",
    "plan_value": "the plan row for exactly that area_code, metric_id and month (the latest "
                  "loaded file's if two); an ICB or England without its own plan row has NULL",
    "ICD-10": "codes are trimmed, upper-cased, stripped of dots and of trailing X and - "
              "characters, then compared by prefix",
}

# ------------------------------------------------------------------ reading the loaded rows


def _loaded(con: duckdb.DuckDBPyConnection, table: str) -> pl.DataFrame:
    """Every row of `table` that came from a file whose status is loaded, with the file's period
    (as the first of its month, or NULL), load time and id to order submissions by."""
    return con.sql(f"""
        select r.* exclude (file_id),
               r.file_id as _file_id,
               f.period as _file_period,
               f.loaded_at as _loaded_at
        from {table} r join files f using (file_id)
        where f.status = 'loaded'
    """).pl()


def _latest(df: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """One row per key: the one from the latest file (period, then load time, then file id)."""
    order = ["_file_period", "_loaded_at", "_file_id"]
    return (df.sort(order, nulls_last=False)
              .unique(subset=key, keep="last", maintain_order=True))


def _code(col: str) -> pl.Expr:
    """A code field as text compared by value: trimmed and upper-cased."""
    return pl.col(col).cast(pl.String).str.strip_chars().str.to_uppercase()


def _icd(col: str) -> pl.Expr:
    """An ICD-10 code as the contract compares it: no dots, no trailing filler, upper case."""
    return (pl.col(col).cast(pl.String).str.strip_chars().str.to_uppercase()
              .str.replace_all(".", "", literal=True)
              .str.replace(r"[X\-]+$", ""))


def _month(col: str) -> pl.Expr:
    return pl.col(col).dt.truncate("1mo")


def _days(later: str, earlier: str) -> pl.Expr:
    return (pl.col(later) - pl.col(earlier)).dt.total_days()


@dataclass
class Inputs:
    spells: pl.DataFrame        # canonical spells, normalised, with flags
    reablement: pl.DataFrame    # current reablement rows
    carehome: pl.DataFrame      # current carehome rows
    hwbs: pl.DataFrame          # hwb, icb
    icbs: list[str]
    population: pl.DataFrame    # period_month, area_code, pop_all, pop_65plus (per HWB)
    plan: pl.DataFrame          # area_code, metric_id, period_month, plan_value
    months: list[date]


def read_inputs(con: duckdb.DuckDBPyConnection) -> Inputs:
    orgs = _latest(_loaded(con, "raw_orgs").with_columns(_code("org_code").alias("org_code")),
                   ["org_code"])
    orgs = orgs.with_columns(_code("org_type").alias("org_type"),
                             _code("parent_code").alias("parent_code"))
    hwbs = (orgs.filter(pl.col("org_type") == "HWB")
                .select(pl.col("org_code").alias("hwb"), pl.col("parent_code").alias("icb")))
    icbs = sorted(set(orgs.filter(pl.col("org_type") == "ICB")["org_code"].to_list())
                  & set(hwbs["icb"].drop_nulls().to_list()))

    files = con.sql("""select distinct period from files
                       where status = 'loaded' and dataset in ('apc', 'reablement', 'carehome')
                         and period is not null""").pl()
    months = sorted(date.fromisoformat(p + "-01") for p in files["period"].to_list())

    spells = _canonical_spells(con)
    reablement = _latest(
        _loaded(con, "raw_reablement").with_columns(_code("la_code").alias("la_code")),
        ["la_code", "client_key", "hosp_discharge_date"])
    reablement = reablement.with_columns(
        _code("status_91d").alias("status_91d"),
        _month("hosp_discharge_date").alias("month"))
    carehome = _latest(
        _loaded(con, "raw_carehome").with_columns(_code("la_code").alias("la_code")),
        ["la_code", "client_key", "admission_date"])
    carehome = carehome.with_columns(
        _code("permanent").alias("permanent"), _code("funding").alias("funding"),
        _month("admission_date").alias("month"))

    population = _population(con, hwbs["hwb"].to_list(), months)

    plan = _loaded(con, "raw_plan").with_columns(_code("area_code").alias("area_code"),
                                                 pl.col("period").alias("period_month"))
    plan = _latest(plan, ["area_code", "metric_id", "period_month"]).select(
        "area_code", "metric_id", "period_month", "plan_value")
    return Inputs(spells, reablement, carehome, hwbs, icbs, population, plan, months)


def _canonical_spells(con) -> pl.DataFrame:
    apc = _loaded(con, "raw_apc").with_columns(_code("procode").alias("procode"),
                                               pl.col("provspno").cast(pl.String))
    spells = _latest(apc, ["procode", "provspno"])
    diag1 = _icd("diag_4_01")
    secondary = [_icd(c) for c in SECONDARY_DIAGS]
    return spells.with_columns(
        _code("admimeth").alias("admimeth"),
        _code("dismeth").alias("dismeth"),
        _code("disdest").alias("disdest"),
        _code("resladst_ons").alias("resladst_ons"),
        # STARTAGE 7001-7007 is under one year: age 0
        pl.when(pl.col("startage").is_between(7001, 7007)).then(0)
          .otherwise(pl.col("startage")).alias("age"),
        _month("admidate").alias("admit_month"),
        _month("disdate").alias("discharge_month"),
        diag1.alias("_d1"),
        pl.concat_list(secondary).alias("_d2"),
    ).with_columns(
        pl.col("admimeth").is_in(list(EMERGENCY)).alias("emergency"),
        (pl.col("dismeth").is_in(list(DEATH_DISMETH)).fill_null(False)
         | (pl.col("disdest") == DEATH_DISDEST).fill_null(False)).alias("death"),
        _days("disdate", "admidate").alias("stay"),
        _days("disdate", "discharge_ready_date").alias("delay"),
        pl.any_horizontal([pl.col("_d1").str.starts_with(p) for p in CHRONIC_ACSC]).fill_null(False)
        .or_(pl.col("_d1").str.starts_with(J20_PRIMARY).fill_null(False)
             & pl.col("_d2").list.eval(
                 pl.any_horizontal([pl.element().str.starts_with(p) for p in J20_SECONDARY])
                 .fill_null(False)).list.any())
        .alias("chronic_acsc"),
        (pl.col("_d1").str.slice(0, 3).is_in(list(INJURY)).fill_null(False)
         & pl.col("_d2").list.eval(pl.element().str.slice(0, 3).is_in(list(FALLS))
                                   .fill_null(False)).list.any()).alias("fall"),
    )


def _population(con, hwb_codes: list[str], months: list[date]) -> pl.DataFrame:
    """Per HWB and month: the population of all ages and of 65+, from the latest mid-year
    estimate at or before the month's year (NULL when there is none)."""
    pop = _loaded(con, "raw_population").with_columns(_code("area_code").alias("area_code"))
    pop = _latest(pop, ["area_code", "year", "sex", "age"])
    by_year = pop.group_by("area_code", "year").agg(
        pl.col("population").sum().alias("pop_all"),
        pl.col("population").filter(pl.col("age") >= 65).sum().alias("pop_65plus"))
    rows = []
    for m in months:
        for hwb in hwb_codes:
            years = by_year.filter((pl.col("area_code") == hwb) & (pl.col("year") <= m.year))
            if years.height:
                best = years.sort("year").tail(1)
                rows.append((m, hwb, float(best["pop_all"][0]), float(best["pop_65plus"][0])))
            else:
                rows.append((m, hwb, None, None))
    return pl.DataFrame(rows, schema={"period_month": pl.Date, "area_code": pl.String,
                                      "pop_all": pl.Float64, "pop_65plus": pl.Float64},
                        orient="row")


# ------------------------------------------------------------------ the metrics at HWB level

def _counts(df: pl.DataFrame, area: str, month: str, numerator: pl.Expr,
            denominator: pl.Expr | None) -> pl.DataFrame:
    """numerator (and denominator) per (area_code, period_month) of the rows in `df`."""
    aggs = [numerator.cast(pl.Float64).alias("numerator")]
    if denominator is not None:
        aggs.append(denominator.cast(pl.Float64).alias("denominator"))
    return (df.group_by(pl.col(area).alias("area_code"), pl.col(month).alias("period_month"))
              .agg(aggs))


def _hwb_metrics(inp: Inputs) -> dict[str, pl.DataFrame]:
    """{metric_id: (area_code, period_month, numerator[, denominator])} for the HWBs; rate
    metrics carry no denominator (the population is joined later)."""
    hwb = inp.hwbs["hwb"].to_list()
    s = inp.spells
    resident = s.filter(pl.col("resladst_ons").is_in(hwb))
    admitted = resident.filter(pl.col("emergency"))
    discharges = resident.filter(pl.col("disdate").is_not_null())
    out: dict[str, pl.DataFrame] = {}

    # ---- admissions (rates)
    out["emergency_admissions"] = _counts(admitted, "resladst_ons", "admit_month", pl.len(), None)
    out["emergency_admissions_65plus"] = _counts(
        admitted.filter(pl.col("age") >= 65), "resladst_ons", "admit_month", pl.len(), None)
    out["avoidable_admissions"] = _counts(
        admitted.filter(~pl.col("admimeth").is_in(list(TRANSFERS)) & pl.col("chronic_acsc")),
        "resladst_ons", "admit_month", pl.len(), None)
    out["falls_admissions_65plus"] = _counts(
        admitted.filter((pl.col("age") >= 65) & pl.col("fall")),
        "resladst_ons", "admit_month", pl.len(), None)

    # ---- discharges
    not_na = ~pl.col("disdest").is_in(list(NOT_APPLICABLE_DISDEST)).fill_null(False)
    usual = discharges.filter(~pl.col("death") & not_na)
    out["discharge_to_usual_residence"] = _counts(
        usual, "resladst_ons", "discharge_month",
        (pl.col("disdest") == USUAL_RESIDENCE_DISDEST).fill_null(False).sum(), pl.len())
    out["mean_length_of_stay"] = _counts(discharges, "resladst_ons", "discharge_month",
                                         pl.col("stay").sum(), pl.len())
    out["long_stay_21plus"] = _counts(discharges, "resladst_ons", "discharge_month",
                                      (pl.col("stay") >= 21).sum(), pl.len())
    ready = discharges.filter(pl.col("discharge_ready_date").is_not_null())
    out["discharged_on_ready_date"] = _counts(ready, "resladst_ons", "discharge_month",
                                              (pl.col("delay") <= 0).sum(), pl.len())
    out["discharge_delay_days"] = _counts(ready, "resladst_ons", "discharge_month",
                                          pl.col("delay").filter(pl.col("delay") > 0).sum(),
                                          (pl.col("delay") >= 1).sum())

    # ---- readmissions within 30 days: index = alive discharge with a person id
    index = discharges.filter(~pl.col("death") & pl.col("person_id").is_not_null())
    emergencies = s.filter(pl.col("emergency") & pl.col("person_id").is_not_null()).select(
        "person_id", pl.col("procode").alias("r_procode"), pl.col("provspno").alias("r_provspno"),
        pl.col("admidate").alias("r_admidate"))
    readmitted = (index.select("procode", "provspno", "person_id", "disdate")
                       .join(emergencies, on="person_id")
                       .filter(~((pl.col("r_procode") == pl.col("procode"))
                                 & (pl.col("r_provspno") == pl.col("provspno")))
                               & _days("r_admidate", "disdate").is_between(0, 29))
                       .select("procode", "provspno").unique()
                       .with_columns(pl.lit(True).alias("readmitted")))
    index = index.join(readmitted, on=["procode", "provspno"], how="left").with_columns(
        pl.col("readmitted").fill_null(False))
    out["readmissions_30d"] = _counts(index, "resladst_ons", "discharge_month",
                                      pl.col("readmitted").sum(), pl.len())

    # ---- council rows (area = LA_CODE)
    care = inp.carehome.filter(pl.col("la_code").is_in(hwb))
    out["care_home_admissions_65plus"] = _counts(
        care.filter((pl.col("permanent") == "Y") & (pl.col("funding") == "LA")
                    & (pl.col("age") >= 65)),
        "la_code", "month", pl.len(), None)
    reab = inp.reablement.filter(pl.col("la_code").is_in(hwb))
    with_status = reab.filter((pl.col("age") >= 65) & pl.col("status_91d").is_not_null()
                              & (pl.col("status_91d") != ""))
    out["reablement_at_home_91d"] = _counts(with_status, "la_code", "month",
                                            (pl.col("status_91d") == "HOME").sum(), pl.len())

    # ---- linked metrics (section 3a)
    older = index.filter(pl.col("age") >= 65).select(
        "procode", "provspno", "person_id", "disdate", "resladst_ons", "discharge_month")
    reab_people = inp.reablement.filter(pl.col("person_id").is_not_null()).select(
        "person_id", "hosp_discharge_date")
    with_reab = (older.join(reab_people, on="person_id")
                      .filter(_days("hosp_discharge_date", "disdate").is_between(0, 1))
                      .select("procode", "provspno").unique()
                      .with_columns(pl.lit(True).alias("hit")))
    out["reablement_after_discharge_65plus"] = _flagged(older, with_reab)
    care_people = inp.carehome.filter(pl.col("person_id").is_not_null()
                                      & (pl.col("permanent") == "Y")).select(
        "person_id", "admission_date")
    with_care = (older.join(care_people, on="person_id")
                      .filter(_days("admission_date", "disdate").is_between(0, 30))
                      .select("procode", "provspno").unique()
                      .with_columns(pl.lit(True).alias("hit")))
    out["carehome_after_discharge_65plus"] = _flagged(older, with_care)

    reab_index = reab.filter((pl.col("age") >= 65) & pl.col("person_id").is_not_null()).select(
        "la_code", "client_key", "hosp_discharge_date", "person_id", "month")
    after = (reab_index.join(emergencies, on="person_id")
                       .filter(_days("r_admidate", "hosp_discharge_date").is_between(1, 91))
                       .select("la_code", "client_key", "hosp_discharge_date").unique()
                       .with_columns(pl.lit(True).alias("hit")))
    reab_index = reab_index.join(after, on=["la_code", "client_key", "hosp_discharge_date"],
                                 how="left").with_columns(pl.col("hit").fill_null(False))
    out["readmission_after_reablement_91d"] = _counts(reab_index, "la_code", "month",
                                                      pl.col("hit").sum(), pl.len())
    return out


def _flagged(index: pl.DataFrame, hits: pl.DataFrame) -> pl.DataFrame:
    flagged = index.join(hits, on=["procode", "provspno"], how="left").with_columns(
        pl.col("hit").fill_null(False))
    return _counts(flagged, "resladst_ons", "discharge_month", pl.col("hit").sum(), pl.len())


# ------------------------------------------------------------------ every cell, every level

def compute_metric_values(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every (period_month, area_type, area_code, metric_id) cell with numerator, denominator,
    value and plan_value, from the loaded raw tables of the database `con` is connected to."""
    inp = read_inputs(con)
    per_hwb = _hwb_metrics(inp)
    grid = pl.DataFrame({"period_month": inp.months}, schema={"period_month": pl.Date}).join(
        inp.hwbs, how="cross").rename({"hwb": "area_code"})
    grid = grid.join(inp.population, on=["period_month", "area_code"], how="left")
    frames = []
    for metric in METRICS:
        counts = per_hwb[metric.metric_id]
        cells = grid.join(counts, on=["area_code", "period_month"], how="left").with_columns(
            pl.col("numerator").fill_null(0.0))
        if metric.unit == RATE:
            cells = cells.with_columns(pl.col(f"pop_{metric.population}").alias("denominator"))
        else:
            cells = cells.with_columns(pl.col("denominator").fill_null(0.0))
        frames.append(_levels(cells, inp.icbs).with_columns(
            pl.lit(metric.metric_id).alias("metric_id"), pl.lit(metric.unit).alias("_unit")))
    out = pl.concat(frames)
    scale = (pl.when(pl.col("_unit") == RATE).then(100000.0)
               .when(pl.col("_unit") == PERCENT).then(100.0).otherwise(1.0))
    out = out.with_columns(
        pl.when(pl.col("denominator").is_null() | (pl.col("denominator") == 0)).then(None)
          .otherwise(scale * pl.col("numerator") / pl.col("denominator")).alias("value"))
    out = out.join(inp.plan, on=["area_code", "metric_id", "period_month"], how="left")
    return out.select("period_month", "area_type", "area_code", "metric_id", "numerator",
                      "denominator", "value", "plan_value").sort(
        "metric_id", "period_month", "area_type", "area_code")


def _levels(cells: pl.DataFrame, icbs: list[str]) -> pl.DataFrame:
    """HWB cells, and the ICB and England cells as sums of them (a NULL population anywhere
    makes the sum NULL: a rate is never computed from a partial population)."""
    def summed(df: pl.DataFrame, by: list[str]) -> pl.DataFrame:
        return df.group_by(by).agg(
            pl.col("numerator").sum(),
            pl.when(pl.col("denominator").is_null().any()).then(None)
              .otherwise(pl.col("denominator").sum()).alias("denominator"))

    hwb = cells.select("period_month", "area_code", "numerator", "denominator").with_columns(
        pl.lit("hwb").alias("area_type"))
    icb = (summed(cells.filter(pl.col("icb").is_in(icbs)), ["icb", "period_month"])
           .rename({"icb": "area_code"}).with_columns(pl.lit("icb").alias("area_type")))
    england = summed(cells, ["period_month"]).with_columns(
        pl.lit(ENGLAND).alias("area_code"), pl.lit("england").alias("area_type"))
    cols = ["period_month", "area_type", "area_code", "numerator", "denominator"]
    return pl.concat([hwb.select(cols), icb.select(cols), england.select(cols)])
