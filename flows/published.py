"""Recognise and parse files published by NHS England and ONS, dropped into the landing folder unchanged.

A published file keeps the name it was downloaded with, so nothing here looks at the name to decide
what a file is: `detect_published` reads the header row (the first of the first few records that
matches a known layout; title lines above it are skipped) and `read_published` reads the month
from the content. The one exception is the year of an ONS mid-year estimate, which the ONS
"MYE2" single-year-of-age table does not carry in its rows (see `_ons_year`).

Layouts recognised (header names compared case-, space- and punctuation-insensitively):

* `nhse_ae` — NHS England "A&E Attendances and Emergency Admissions" monthly provider CSV:
  `Period, Org Code, Parent Org, Org name`, then 18 counts, one row per provider and a `TOTAL`
  row (England as published). Period strings look like `MSitAE-MARCH-2026`.
* `nhse_discharge` — NHS England acute discharge sitrep by trust and day (the layouts kept by the
  healthyr package): `nhs_trust22_code, date` and `do_not_meet_criteria_to_reside` and/or
  `discharged_total` (with `discharged_by_1700`, `discharged_between_1701_2359` up to May 2023).
* `ons_population` — ONS mid-year estimates "MYE2" by area and single year of age, wide:
  `Code, Name, Geography, All ages, 0 … 89, 90+` with thousands separators inside quotes.

Every data record after the header is accounted for: `rows_in = rows_loaded + len(quarantined)
+ check_rows` (`rows_loaded` counts input records; for ONS one record becomes 91 rows, one per age).
"""
from __future__ import annotations

import csv
import gzip
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from flows.errors import FileRejected

__all__ = ["PublishedFile", "detect_published", "read_published", "data_records", "DATASETS",
           "PUBLISHERS"]

DATASETS = ("nhse_ae", "nhse_discharge", "ons_population")
PUBLISHERS = {"nhse_ae": "NHSE", "nhse_discharge": "NHSE", "ons_population": "ONS"}
_HEADER_SEARCH_RECORDS = 20          # how many leading records may hold title lines before the header
_HEAD_BYTES = 256 * 1024             # how much of a file detection reads


@dataclass
class PublishedFile:
    dataset: str            # 'nhse_ae' | 'nhse_discharge' | 'ons_population'
    org_code: str           # 'NHSE' or 'ONS' (the publisher)
    period: str | None      # 'YYYY-MM' read from the content; None for ONS population, and for a
                            # discharge file that spans several months (see `periods`)
    rows: pl.DataFrame      # normalised rows to load; `line_number` (1 = first data row) included
    quarantined: list[tuple[int, str, str]]   # (line_number, rule, detail)
    check_rows: int         # rows used only as checks (the TOTAL row)
    rows_in: int            # data records after the header
    checks: list[dict]      # {'check', 'column', 'published', 'computed', 'ok', ...}
    layout: str = ""        # which variant of the dataset's layout the header matched
    periods: list[str] = field(default_factory=list)   # every 'YYYY-MM' the loaded rows cover
    edition: str | None = None    # ONS population: the mid-year ('2020'); part of the file's identity
    notes: list[str] = field(default_factory=list)     # how the file was read (encoding, year source ...)

    @property
    def identity(self) -> str:
        """Files with the same identity replace each other (a newer publication of the same data).

        The month (or the ONS mid-year) and the layout: the two discharge layouts (criteria to
        reside, discharges) and the ONS persons / males / females tables never replace each
        other. A file spanning several months is identified by its first and last month."""
        span = self.period or self.edition or (
            f"{self.periods[0]}..{self.periods[-1]}" if self.periods else "")
        return "|".join((self.dataset, self.org_code, span, self.layout))

    @property
    def rows_loaded(self) -> int:
        """Input records loaded (ONS: one record gives one row per age)."""
        if self.rows.height == 0:
            return 0
        return self.rows.get_column("line_number").n_unique()


# --------------------------------------------------------------------------------------------
# Reading text

def _raw_bytes(path: Path, limit: int | None = None) -> bytes:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as fh:
            return fh.read() if limit is None else fh.read(limit)
    with open(path, "rb") as fh:
        return fh.read() if limit is None else fh.read(limit)


def _decode(data: bytes, partial: bool = False) -> tuple[str, str]:
    """UTF-8 (BOM allowed); published spreadsheets pasted to CSV are often Windows-1252."""
    if data[:4] == b"PK\x03\x04":
        raise FileRejected("unreadable", "this is a zip/xlsx workbook; save the sheet as CSV")
    if b"\x00" in data[:4096]:
        raise FileRejected("unreadable", "binary content (NUL bytes); expected a CSV text file")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        if partial and exc.start >= len(data) - 3:       # a character cut at the read limit
            return data[: exc.start].decode("utf-8-sig"), "utf-8"
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _records(text: str) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise FileRejected("unreadable", f"not a readable CSV: {exc}") from None


def _norm(name: str) -> str:
    """Header name for matching: lower case, punctuation other than + and & as spaces."""
    name = name.replace("\ufeff", "").replace("\u2013", "-").replace("\u2014", "-").lower()
    return " ".join(re.sub(r"[^a-z0-9+&]+", " ", name).split())


def _clean(value: str) -> str:
    return " ".join(value.split())       # trims and collapses spaces, including non-breaking ones


# --------------------------------------------------------------------------------------------
# Layouts

_AE_COLUMNS: dict[str, str] = {
    # normalised name -> pattern on the normalised header
    "period": r"period",
    "org_code": r"org(anisation)? code",
    "parent_org": r"parent org(anisation)?( name)?",
    "org_name": r"org(anisation)? name",
    "att_type1": r"(number of )?a&e attendances type 1",
    "att_type2": r"(number of )?a&e attendances type 2",
    "att_other": r"(number of )?a&e attendances other( a&e)? department",
    "att_booked_type1": r"(number of )?a&e attendances booked appointments type 1",
    "att_booked_type2": r"(number of )?a&e attendances booked appointments type 2",
    "att_booked_other": r"(number of )?a&e attendances booked appointments other( a&e)? department",
    "over4h_type1": r"(number of )?attendances over 4 ?hrs? type 1",
    "over4h_type2": r"(number of )?attendances over 4 ?hrs? type 2",
    "over4h_other": r"(number of )?attendances over 4 ?hrs? other( a&e)? department",
    "over4h_booked_type1": r"(number of )?attendances over 4 ?hrs? booked appointments type 1",
    "over4h_booked_type2": r"(number of )?attendances over 4 ?hrs? booked appointments type 2",
    "over4h_booked_other":
        r"(number of )?attendances over 4 ?hrs? booked appointments other( a&e)? department",
    # NHS England's header says "4-12 hs" (sic)
    "dta_4_12h": r"(number of )?patients who have waited 4 12 h[a-z]* from dta to admission",
    "dta_12h": r"(number of )?patients who have waited 12\+ h[a-z]* from dta to admission",
    "emadm_ae_type1": r"(number of )?emergency admissions via a&e type 1",
    "emadm_ae_type2": r"(number of )?emergency admissions via a&e type 2",
    "emadm_ae_other": r"(number of )?emergency admissions via a&e other( a&e)? department",
    "emadm_other": r"(number of )?other emergency admissions",
}
_AE_TEXT = ("period", "org_code", "parent_org", "org_name")
_AE_COUNTS = tuple(c for c in _AE_COLUMNS if c not in _AE_TEXT)
_AE_REQUIRED = ("period", "org_code", "att_type1", "att_type2", "att_other",
                "over4h_type1", "over4h_type2", "over4h_other")

_DISCHARGE_COLUMNS: dict[str, str] = {
    "org_code": r"(nhs )?trust[0-9]* code|org(anisation)? code|provider code",
    "org_name": r"(nhs )?trust[0-9]* name|org(anisation)? name|provider name",
    "date": r"date|period",
    "nctr": r"(number of )?(patients )?(who )?(do not|no longer|not) meet(ing)? (the )?criteria to reside",
    "discharges": r"discharged total|(number of )?(patients )?discharged|discharges|total discharges",
    "discharges_by_1700": r"discharged by 1700|discharged before 1700",
    "discharges_1701_2359": r"discharged between 1701 2359|discharged after 1700",
}
_DISCHARGE_MEASURES = ("nctr", "discharges", "discharges_by_1700", "discharges_1701_2359")

_ONS_COLUMNS: dict[str, str] = {
    "area_code": r"(area |la |lad )?code",
    "area_name": r"(area |la |lad )?name",
    "geography": r"geography[0-9]*",
    "all_ages": r"all ages",
}
_AGE = re.compile(r"(?:age )?(\d{1,3})(\+)?")


def _match(headers: list[str], patterns: dict[str, str]) -> dict[str, int]:
    """Map normalised names to header positions; a name matched twice is an error."""
    found: dict[str, int] = {}
    for i, raw in enumerate(headers):
        h = _norm(raw)
        for name, pattern in patterns.items():
            if re.fullmatch(pattern, h):
                if name in found:
                    raise FileRejected("duplicate_column",
                                       f"columns '{headers[found[name]]}' and '{raw}' both mean {name}")
                found[name] = i
                break
    return found


def _ons_ages(headers: list[str]) -> dict[int, tuple[int, bool]]:
    """Position -> (age, open-ended) for the single-year columns of an ONS table."""
    ages = {}
    for i, raw in enumerate(headers):
        m = _AGE.fullmatch(_norm(raw))
        if m:
            ages[i] = (int(m.group(1)), bool(m.group(2)))
    return ages


def _layout_of(headers: list[str]) -> str | None:
    """The dataset a header row belongs to, or None. Never raises."""
    try:
        ae = _match(headers, _AE_COLUMNS)
        if {"period", "org_code"} <= ae.keys() and any(k.startswith(("att_", "over4h_")) for k in ae):
            return "nhse_ae"
        dis = _match(headers, _DISCHARGE_COLUMNS)
        if {"org_code", "date"} <= dis.keys() and any(k in dis for k in _DISCHARGE_MEASURES):
            return "nhse_discharge"
        ons = _match(headers, _ONS_COLUMNS)
        ages = {a for a, _ in _ons_ages(headers).values()}
        if "area_code" in ons and {0, 1, 2} <= ages and len(ages) >= 20:
            return "ons_population"
    except FileRejected:
        return None
    return None


def _find_header(records: list[list[str]]) -> tuple[int, str] | None:
    for i, rec in enumerate(records[:_HEADER_SEARCH_RECORDS]):
        if not any(v.strip() for v in rec):
            continue
        dataset = _layout_of(rec)
        if dataset:
            return i, dataset
    return None


def detect_published(path: Path) -> str | None:
    """The dataset a published file holds, judged by its header layout (not its name), or None."""
    try:
        data = _raw_bytes(Path(path), _HEAD_BYTES)
        text, _ = _decode(data, partial=True)
        lines = text.splitlines(keepends=True)
        if len(data) >= _HEAD_BYTES and len(lines) > 1:
            lines = lines[:-1]                      # drop a line cut at the read limit
        found = _find_header(_records("".join(lines[: _HEADER_SEARCH_RECORDS * 4])))
    except (OSError, EOFError, FileRejected, gzip.BadGzipFile):
        return None
    return found[1] if found else None


# --------------------------------------------------------------------------------------------
# Values

_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"], start=1)}
_MONTH_ABBR = {m[:3]: i for m, i in _MONTHS.items()}
_NAMED_MONTH = re.compile(r"(?<![a-z])([a-z]{3,9})[\s\-_./]*'?(\d{4}|\d{2})(?!\d)")
_ISO_MONTH = re.compile(r"(?<!\d)(\d{4})-(\d{2})(?:-(\d{2}))?(?!\d)")


def _parse_month(value: str) -> str | None:
    """'MSitAE-MARCH-2026', 'March 2026', 'Mar-26', '2026-03', '2026-03-01' -> '2026-03'."""
    v = value.strip().lower()
    m = _ISO_MONTH.search(v)
    if m and 1 <= int(m.group(2)) <= 12:
        return f"{m.group(1)}-{m.group(2)}"
    for m in _NAMED_MONTH.finditer(v):
        word, year = m.group(1), m.group(2)
        month = _MONTHS.get(word) or (_MONTH_ABBR.get(word) if len(word) == 3 else None)
        if month:
            y = int(year) if len(year) == 4 else 2000 + int(year)
            return f"{y:04d}-{month:02d}"
    return None


def _month_date(period: str) -> date:
    return date(int(period[:4]), int(period[5:7]), 1)


_INT = re.compile(r"-?\d+")
_THOUSANDS = re.compile(r"\d{1,3}(,\d{3})+")
_EMPTY = ("", "-")


def _count(value: str) -> int | None:
    """A published count: digits, maybe with thousands separators; '' or '-' is missing (None).
    Raises ValueError for anything else, negatives included."""
    v = _clean(value)
    if v in _EMPTY:
        return None
    if _THOUSANDS.fullmatch(v):
        v = v.replace(",", "")
    if not _INT.fullmatch(v) or v.startswith("-"):
        raise ValueError(v)
    return int(v)


def _parse_date(value: str) -> date | None:
    v = value.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(v, fmt).date()
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# Shared row handling

class _Rows:
    """Data records after the header, with the rules every layout shares."""

    def __init__(self, records: list[list[str]], headers: list[str]):
        self.records = records
        self.headers = headers
        self.named = max((i for i, h in enumerate(headers) if h.strip()), default=-1) + 1
        self.quarantined: dict[int, tuple[str, str]] = {}

    def quarantine(self, line: int, rule: str, detail: str) -> None:
        self.quarantined.setdefault(line, (rule, detail))

    def shape_ok(self, line: int, rec: list[str]) -> bool:
        """Blank records and records whose fields do not line up with the header are quarantined."""
        if not any(v.strip() for v in rec):
            self.quarantine(line, "blank_row", "every field is empty")
            return False
        if len(rec) < self.named:
            self.quarantine(line, "field_count", f"{len(rec)} fields, the header names {self.named}")
            return False
        extra = [v for v in rec[self.named:] if v.strip()]
        if extra:
            self.quarantine(line, "field_count",
                            f"{len(rec)} fields, the header names {self.named}; "
                            f"extra value '{extra[0].strip()}'")
            return False
        return True

    def quarantine_duplicates(self, keys: dict[int, tuple], rule: str, label) -> None:
        """Every row whose key occurs more than once is quarantined (the file cannot say which is right)."""
        counts = Counter(keys.values())
        for line, key in keys.items():
            if counts[key] > 1:
                self.quarantine(line, rule, f"{label(key)} occurs {counts[key]} times")

    def quarantine_list(self) -> list[tuple[int, str, str]]:
        return [(line, rule, detail) for line, (rule, detail) in sorted(self.quarantined.items())]


def _numbers(rec: list[str], cols: dict[str, int], names, headers) -> tuple[dict, str | None]:
    out, bad = {}, []
    for name in names:
        if name not in cols:
            out[name] = None
            continue
        raw = rec[cols[name]]
        try:
            out[name] = _count(raw)
        except ValueError:
            bad.append(f"{headers[cols[name]].strip()}='{raw.strip()}'")
    return out, ("; ".join(bad) if bad else None)


def _read_records(path: Path) -> tuple[list[list[str]], str]:
    try:
        data = _raw_bytes(path)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise FileRejected("unreadable", f"cannot read the file: {exc}") from None
    text, encoding = _decode(data)
    return _records(text), encoding


def data_records(path: Path) -> int:
    """Data records after the recognised header: what a rejected published file counts as its
    rows (0 when the file cannot be read or no known header is found)."""
    try:
        records, _ = _read_records(Path(path))
    except FileRejected:
        return 0
    found = _find_header(records)
    return len(records) - found[0] - 1 if found else 0


def read_published(path: Path, *, year: int | None = None) -> PublishedFile:
    """Parse a published file recognised by its header.

    `year` gives the mid-year of an ONS population table when neither its title lines nor its
    file name say it. Raises FileRejected(rule, detail) when the file cannot be read, its layout
    is not recognised, a required column is missing or its month cannot be read from its rows.
    """
    path = Path(path)
    records, encoding = _read_records(path)
    found = _find_header(records)
    if found is None:
        raise FileRejected("unknown_layout", "the header matches no published layout "
                           "(NHS England A&E monthly, discharge sitrep, ONS mid-year estimates)")
    index, dataset = found
    preamble = [" ".join(v.strip() for v in rec if v.strip()) for rec in records[:index]]
    headers, data = records[index], records[index + 1:]
    notes = [f"read as {encoding}"] if encoding != "utf-8" else []
    if index:
        notes.append(f"{index} title line(s) above the header skipped")
    if dataset == "nhse_ae":
        result = _read_ae(headers, data)
    elif dataset == "nhse_discharge":
        result = _read_discharge(headers, data)
    else:
        result = _read_ons(headers, data, preamble, path.name, year)
    result.notes[:0] = notes
    assert result.rows_in == result.rows_loaded + len(result.quarantined) + result.check_rows
    return result


def _require(cols: dict[str, int], required, dataset: str) -> None:
    missing = [c for c in required if c not in cols]
    if missing:
        raise FileRejected("missing_column", f"{dataset}: required column(s) missing: {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# NHS England A&E monthly provider file

def _read_ae(headers: list[str], data: list[list[str]]) -> PublishedFile:
    cols = _match(headers, _AE_COLUMNS)
    _require(cols, _AE_REQUIRED, "nhse_ae")
    rows = _Rows(data, headers)
    counts_present = [c for c in _AE_COUNTS if c in cols]

    parsed: dict[int, dict] = {}
    totals: list[tuple[int, dict, str | None, str]] = []
    for line, rec in enumerate(data, start=1):
        if not rows.shape_ok(line, rec):
            continue
        org = _clean(rec[cols["org_code"]]).upper()
        period_raw = _clean(rec[cols["period"]])
        if org == "TOTAL" or (period_raw.upper() == "TOTAL" and org in ("", "TOTAL")):
            values, bad = _numbers(rec, cols, counts_present, headers)
            totals.append((line, values, bad, period_raw))
            continue
        if not org:
            rows.quarantine(line, "missing_org_code", f"{headers[cols['org_code']].strip()} is empty")
            continue
        period = _parse_month(period_raw)
        if period is None:
            rows.quarantine(line, "bad_period", f"{headers[cols['period']].strip()}='{period_raw}'")
            continue
        values, bad = _numbers(rec, cols, counts_present, headers)
        parsed[line] = {"period": period, "org_code": org, "values": values, "bad": bad,
                        "parent_org": _clean(rec[cols["parent_org"]]) if "parent_org" in cols else None,
                        "org_name": _clean(rec[cols["org_name"]]) if "org_name" in cols else None}

    # The file's month is the month its provider rows state (the most common one).
    months = Counter(p["period"] for p in parsed.values())
    if not months:
        raise FileRejected("no_period", "no provider row carries a readable Period "
                           "(expected e.g. 'MSitAE-MARCH-2026')")
    file_period = months.most_common(1)[0][0]
    if len(months) > 1 and months.most_common(2)[1][1] == months[file_period]:
        raise FileRejected("no_period", f"provider rows disagree on the month: {dict(months)}")

    keys = {}
    for line, p in parsed.items():
        if p["period"] != file_period:
            rows.quarantine(line, "period_mismatch",
                            f"Period {p['period']}, the file's other rows are {file_period}")
        elif p["bad"]:
            rows.quarantine(line, "bad_number", p["bad"])
        keys[line] = (p["org_code"], p["period"])
    rows.quarantine_duplicates(keys, "duplicate_org", lambda k: f"Org Code {k[0]} in {k[1]}")

    # The TOTAL row: the first is the check row, any other is quarantined.
    check_rows = 0
    total = None
    for line, values, bad, period_raw in totals:
        if total is None:
            total, check_rows = (line, values, bad, period_raw), 1
        else:
            rows.quarantine(line, "duplicate_total", f"a second TOTAL row (the first is data row {total[0]})")

    loaded = [line for line in parsed if line not in rows.quarantined]
    period_d = _month_date(file_period)
    frame = {"line_number": loaded, "period": [period_d] * len(loaded)}
    for name in ("org_code", "parent_org", "org_name"):
        frame[name] = [parsed[line][name] for line in loaded]
    for name in _AE_COUNTS:
        frame[name] = [parsed[line]["values"][name] for line in loaded]
    schema = {"line_number": pl.Int64, "period": pl.Date, "org_code": pl.Utf8, "parent_org": pl.Utf8,
              "org_name": pl.Utf8, **{c: pl.Int64 for c in _AE_COUNTS}}
    df = pl.DataFrame(frame, schema=schema)

    checks = []
    if total is None:
        checks.append({"check": "england_total", "column": None, "published": None, "computed": None,
                       "ok": False, "detail": "the file has no TOTAL row"})
    else:
        t_line, t_values, t_bad, t_period = total
        for name in counts_present:
            computed = int(df.get_column(name).sum() or 0)
            published = t_values.get(name)
            check = {"check": "england_total", "column": name, "source_column": headers[cols[name]].strip(),
                     "published": published, "computed": computed,
                     "ok": published is not None and published == computed}
            if published is None:
                check["detail"] = f"TOTAL row (data row {t_line}) has no readable value" + (
                    f": {t_bad}" if t_bad else "")
            checks.append(check)
        t_month = _parse_month(t_period) if t_period.upper() != "TOTAL" else None
        if t_month is not None and t_month != file_period:
            checks.append({"check": "total_period", "column": "period", "published": t_month,
                           "computed": file_period, "ok": False})
    return PublishedFile("nhse_ae", "NHSE", file_period, df, rows.quarantine_list(), check_rows,
                         len(data), checks, layout="monthly_provider", periods=[file_period])


# --------------------------------------------------------------------------------------------
# NHS England discharge sitrep by trust and day

def _read_discharge(headers: list[str], data: list[list[str]]) -> PublishedFile:
    cols = _match(headers, _DISCHARGE_COLUMNS)
    _require(cols, ("org_code", "date"), "nhse_discharge")
    measures = [m for m in _DISCHARGE_MEASURES if m in cols]
    if not ({"nctr", "discharges"} & set(measures)):
        raise FileRejected("missing_column", "nhse_discharge: neither patients not meeting the criteria "
                           "to reside nor discharges")
    rows = _Rows(data, headers)
    parsed: dict[int, dict] = {}
    for line, rec in enumerate(data, start=1):
        if not rows.shape_ok(line, rec):
            continue
        org = _clean(rec[cols["org_code"]]).upper()
        if not org:
            rows.quarantine(line, "missing_org_code", f"{headers[cols['org_code']].strip()} is empty")
            continue
        day = _parse_date(rec[cols["date"]])
        if day is None:
            rows.quarantine(line, "bad_date",
                            f"{headers[cols['date']].strip()}='{rec[cols['date']].strip()}'")
            continue
        values, bad = _numbers(rec, cols, measures, headers)
        if bad:
            rows.quarantine(line, "bad_number", bad)
            continue
        parsed[line] = {"org_code": org, "date": day, "values": values,
                        "org_name": _clean(rec[cols["org_name"]]) or None if "org_name" in cols else None}
    rows.quarantine_duplicates({line: (p["org_code"], p["date"]) for line, p in parsed.items()},
                               "duplicate_org", lambda k: f"trust {k[0]} on {k[1].isoformat()}")

    loaded = [line for line in parsed if line not in rows.quarantined]
    days = [parsed[line]["date"] for line in loaded]
    frame = {"line_number": loaded, "period": [d.replace(day=1) for d in days], "date": days,
             "org_code": [parsed[line]["org_code"] for line in loaded],
             "org_name": [parsed[line]["org_name"] for line in loaded]}
    for m in _DISCHARGE_MEASURES:
        frame[m] = [parsed[line]["values"].get(m) for line in loaded]
    schema = {"line_number": pl.Int64, "period": pl.Date, "date": pl.Date, "org_code": pl.Utf8,
              "org_name": pl.Utf8, **{m: pl.Int64 for m in _DISCHARGE_MEASURES}}
    df = pl.DataFrame(frame, schema=schema)

    periods = sorted({d.strftime("%Y-%m") for d in days})
    checks = []
    if {"discharges", "discharges_by_1700", "discharges_1701_2359"} <= set(measures):
        split = df.filter(pl.col("discharges_by_1700").is_not_null()
                          & pl.col("discharges_1701_2359").is_not_null()
                          & pl.col("discharges").is_not_null())
        published = int(split.get_column("discharges").sum() or 0)
        computed = int((split.get_column("discharges_by_1700")
                        + split.get_column("discharges_1701_2359")).sum() or 0)
        bad_rows = split.filter(pl.col("discharges_by_1700") + pl.col("discharges_1701_2359")
                                != pl.col("discharges")).height
        checks.append({"check": "discharge_split", "column": "discharges", "published": published,
                       "computed": computed, "ok": published == computed and bad_rows == 0,
                       "rows_checked": split.height, "rows_failing": bad_rows})
    layout = "daily_" + "_".join(m for m in ("nctr", "discharges") if m in measures)
    notes = []
    if len(periods) > 1:
        notes.append(f"the file covers {len(periods)} months ({periods[0]} to {periods[-1]}); "
                     "period is None and each row carries its own")
    return PublishedFile("nhse_discharge", "NHSE", periods[0] if len(periods) == 1 else None, df,
                         rows.quarantine_list(), 0, len(data), checks, layout=layout, periods=periods,
                         notes=notes)


# --------------------------------------------------------------------------------------------
# ONS mid-year estimates, single year of age, wide

# Country rows and the lowest-tier areas whose sum they are.
_COUNTRY_PARTS = {"E92000001": ("E06", "E07", "E08", "E09"), "W92000004": ("W06",),
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


def _read_ons(headers: list[str], data: list[list[str]], preamble: list[str], file_name: str,
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

    rows = _Rows(data, headers)
    parsed: dict[int, dict] = {}
    all_ages_published = all_ages_computed = 0
    for line, rec in enumerate(data, start=1):
        if not rows.shape_ok(line, rec):
            continue
        code = _clean(rec[cols["area_code"]]).upper()
        if not code:
            rows.quarantine(line, "missing_area_code", f"{headers[cols['area_code']].strip()} is empty")
            continue
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
