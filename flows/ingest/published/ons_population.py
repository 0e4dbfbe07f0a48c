"""ONS mid-year estimates "MYE2": population by area and single year of age, wide."""
from __future__ import annotations

import re

import polars as pl

from flows import ENGLAND_CODE
from flows.errors import FileRejected
from flows.ingest.published.common import PublishedFile, _clean, _count, _match, _norm, _require, _Rows

_ONS_COLUMNS: dict[str, str] = {
    "area_code": r"(area |la |lad )?code",
    "area_name": r"(area |la |lad )?name",
    "geography": r"geography[0-9]*",
    "all_ages": r"all ages",
}
_AGE = re.compile(r"(?:age )?(\d{1,3})(\+)?")


def _ons_ages(headers: list[str]) -> dict[int, tuple[int, bool]]:
    """Position -> (age, open-ended) for the single-year columns of an ONS table."""
    ages = {}
    for i, raw in enumerate(headers):
        m = _AGE.fullmatch(_norm(raw))
        if m:
            ages[i] = (int(m.group(1)), bool(m.group(2)))
    return ages


# Country rows and the lowest-tier areas whose sum they are.
_COUNTRY_PARTS = {ENGLAND_CODE: ("E06", "E07", "E08", "E09"), "W92000004": ("W06",),
                  "S92000003": ("S12",), "N92000002": ("N09",)}
_MID_YEAR = re.compile(r"mid[\s\-_]?((?:19|20)\d{2})(?!\d)", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


def _ons_year(preamble: list[str], file_name: str, year: int | None) -> tuple[int, str]:
    """The table's mid-year: given, else from its title lines ('mid-2020'), else from the file name.

    The ONS MYE2 table carries the year only in the workbook's title, which a CSV paste loses;
    the name is then the only place it survives, so it is read from there as a last resort
    (one distinct year in the name, else the file is rejected)."""
    if year is not None:
        return int(year), "given by the caller"
    for line in preamble:
        m = _MID_YEAR.search(line)
        if m:
            return int(m.group(1)), f"title line '{line[:80]}'"
    years = {int(y) for y in _YEAR.findall(file_name)}
    if len(years) == 1:
        return years.pop(), f"file name '{file_name}' (the table itself does not state its year)"
    raise FileRejected("population_year", "the ONS table does not state its mid-year and the file name "
                       "holds no single year (e.g. mid-2020); pass it explicitly")


def _ons_sex(preamble: list[str]) -> int | None:
    text = " ".join(preamble).lower()
    if re.search(r"\bfemales?\b", text):
        return 2
    if re.search(r"\bmales?\b", text):
        return 1
    return None


def matches(headers: list[str]) -> bool:
    """The header names an area code and single years of age from 0 (at least 20 of them).
    Raises FileRejected when two of its columns mean the same."""
    cols = _match(headers, _ONS_COLUMNS)
    ages = {a for a, _ in _ons_ages(headers).values()}
    return "area_code" in cols and {0, 1, 2} <= ages and len(ages) >= 20


def read(headers: list[str], data: list[list[str]], preamble: list[str], file_name: str,
              year: int | None) -> PublishedFile:
    cols = _match(headers, _ONS_COLUMNS)
    ages = _ons_ages(headers)
    _require(cols, ("area_code",), "ons_population")
    singles = {a for a, open_ended in ages.values() if not open_ended}
    tops = [a for a, open_ended in ages.values() if open_ended]
    missing = [str(a) for a in range(90) if a not in singles]
    if missing or not (90 in singles or tops):
        raise FileRejected("missing_column", "ons_population: single-year age columns 0-89 and 90+ "
                           f"required; missing: {', '.join(missing) or '90+'}")
    if tops and min(tops) < 90:
        raise FileRejected("missing_column", f"ons_population: the oldest group is {min(tops)}+, "
                           "single years to 89 and 90+ are required")
    age_cols = sorted(ages.items())                       # (position, (age, open))
    year_value, year_source = _ons_year(preamble, file_name, year)
    sex = _ons_sex(preamble)
    notes = [f"mid-year {year_value} from {year_source}"]
    if sex is None:
        notes.append("persons only: the ONS table has no sex split, so sex is NULL on every row")

    rows = _Rows(data, headers, [*cols.values(), *ages])
    parsed: dict[int, dict] = {}
    all_ages_published = all_ages_computed = 0
    for line, rec, code in rows.with_code(cols["area_code"], "missing_area_code"):
        by_age = [0] * 91
        bad, empty = [], []
        for pos, (age, _) in age_cols:
            raw = rec[pos]
            try:
                n = _count(raw)
            except ValueError:
                bad.append(f"{headers[pos].strip()}='{raw.strip()}'")
                continue
            if n is None:
                empty.append(headers[pos].strip())
                continue
            by_age[min(age, 90)] += n
        if bad:
            rows.quarantine(line, "bad_number", "; ".join(bad))
            continue
        if empty:
            rows.quarantine(line, "missing_number", f"age column(s) {', '.join(empty[:5])} empty")
            continue
        if "all_ages" in cols:
            try:
                stated = _count(rec[cols["all_ages"]])
            except ValueError:
                rows.quarantine(line, "bad_number",
                                f"{headers[cols['all_ages']].strip()}='{rec[cols['all_ages']].strip()}'")
                continue
            if stated is not None:
                all_ages_published += stated
                all_ages_computed += sum(by_age)
                if stated != sum(by_age):
                    rows.quarantine(line, "all_ages_mismatch",
                                    f"All ages {stated} but the single years sum to {sum(by_age)}")
                    continue
        parsed[line] = {"area_code": code,
                        "area_name": _clean(rec[cols["area_name"]]) if "area_name" in cols else None,
                        "geography": _clean(rec[cols["geography"]]) if "geography" in cols else None,
                        "by_age": by_age}
    rows.quarantine_duplicates({line: p["area_code"] for line, p in parsed.items()},
                               "duplicate_area", lambda k: f"area {k}")
    loaded = [line for line in parsed if line not in rows.quarantined]

    frame = {k: [] for k in ("line_number", "area_code", "area_name", "geography", "age", "population")}
    for line in loaded:
        p = parsed[line]
        frame["line_number"] += [line] * 91
        frame["area_code"] += [p["area_code"]] * 91
        frame["area_name"] += [p["area_name"]] * 91
        frame["geography"] += [p["geography"]] * 91
        frame["age"] += list(range(91))
        frame["population"] += p["by_age"]
    df = pl.DataFrame(frame, schema={"line_number": pl.Int64, "area_code": pl.Utf8, "area_name": pl.Utf8,
                                     "geography": pl.Utf8, "age": pl.Int64, "population": pl.Int64})
    df = df.with_columns(year=pl.lit(year_value, pl.Int64), sex=pl.lit(sex, pl.Int64)).select(
        "line_number", "area_code", "area_name", "geography", "year", "sex", "age", "population")

    checks = []
    if "all_ages" in cols:
        checks.append({"check": "all_ages", "column": "population", "published": all_ages_published,
                       "computed": all_ages_computed, "ok": all_ages_published == all_ages_computed})
    by_code = {parsed[line]["area_code"]: parsed[line]["by_age"] for line in loaded}
    for country, prefixes in _COUNTRY_PARTS.items():
        parts = [v for code, v in by_code.items() if code.startswith(prefixes)]
        if country not in by_code or not parts:
            continue
        published = by_code[country]
        computed = [sum(v[a] for v in parts) for a in range(91)]
        checks.append({"check": f"{country}_total", "column": "all_ages", "published": sum(published),
                       "computed": sum(computed), "ok": sum(published) == sum(computed)})
        for a in range(91):
            checks.append({"check": f"{country}_total", "column": f"age_{a}", "published": published[a],
                           "computed": computed[a], "ok": published[a] == computed[a]})
    layout = "mye2_wide_" + {None: "persons", 1: "males", 2: "females"}[sex]
    return PublishedFile("ons_population", "ONS", None, df, rows.quarantine_list(), 0, len(data), checks,
                         layout=layout, periods=[], edition=str(year_value), notes=notes)
