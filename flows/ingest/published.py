"""Recognise and parse files published by NHS England and ONS, dropped into the landing folder unchanged.

A published file keeps the name it was downloaded with, so nothing here looks at the name to decide
what a file is: `detect_published` reads the header row (the first of the first few records that
matches a known layout; title lines above it are skipped) and `read_published` reads the month
from the content. The one exception is the year of an ONS mid-year estimate, which the ONS
"MYE2" single-year-of-age table does not carry in its rows (see `_ons_year`).

Layouts recognised (header names compared case-, space- and punctuation-insensitively):

* `nhse_ae` — NHS England "A&E Attendances and Emergency Admissions" monthly provider CSV:
  `Period, Org Code, Parent Org, Org name`, then the counts, one row per provider and a total
  row (England as published). Period strings look like `MSitAE-MARCH-2026`. Every generation
  reads alike, its columns mapped by header wording, never by position or count: 2017-18 to
  March 2020 (16 columns, "Number of A&E attendances Type 1"), April to July 2020 (16, "A&E
  attendances Type 1"), August 2020 on (22, booked appointments added). A count a layout lacks
  is None on every row, never 0.
* `nhse_discharge` — NHS England acute discharge sitrep by trust and day (the layouts kept by the
  healthyr package): `nhs_trust22_code, date` and `do_not_meet_criteria_to_reside` and/or
  `discharged_total` (with `discharged_by_1700`, `discharged_between_1701_2359` up to May 2023).
* `ons_population` — ONS mid-year estimates "MYE2" by area and single year of age, wide:
  `Code, Name, Geography, All ages, 0 … 89, 90+` with thousands separators inside quotes.

Nothing here raises on a damaged file: `detect_published` answers None, `read_published` raises
FileRejected naming the file (its name, never its folder) and the cause in plain words.

Every data record after the header is accounted for: `rows_in = rows_loaded + len(quarantined)
+ check_rows` (`rows_loaded` counts input records; for ONS one record becomes 91 rows, one per age).
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from flows import ENGLAND_CODE
from flows.errors import FileRejected
from flows.months import month_start

__all__ = ["PublishedFile", "detect_published", "read_published", "data_records", "DATASETS",
           "PUBLISHERS"]

DATASETS = ("nhse_ae", "nhse_discharge", "ons_population")
PUBLISHERS = {"nhse_ae": "NHSE", "nhse_discharge": "NHSE", "ons_population": "ONS"}
_HEADER_SEARCH_RECORDS = 20          # how many leading records may hold title lines before the header
_HEAD_BYTES = 256 * 1024             # how much of a file detection reads
_MAX_BYTES = 512 * 1024 * 1024      # a published file is at most a few MB; a bigger one is not read


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
    """The file's bytes (decompressed when gzip), up to `limit`; a full read stops at _MAX_BYTES."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    cap = _MAX_BYTES + 1 if limit is None else limit
    chunks, size = [], 0
    with opener(path, "rb") as fh:
        while size < cap and (chunk := fh.read(min(1 << 20, cap - size))):
            chunks.append(chunk)
            size += len(chunk)
    data = b"".join(chunks)
    if limit is None and len(data) > _MAX_BYTES:
        raise FileRejected("unreadable", f"it holds more than {_MAX_BYTES // 2**20} MB of text, far "
                           "more than any published layout; not read")
    return data


def _shown(path: Path) -> str:
    """The file's name as a reason shows it: never its folder; bytes that are not UTF-8 and
    control characters shown as U+FFFD."""
    try:
        name = os.fsencode(path.name).decode("utf-8", "replace")
    except UnicodeError:
        name = path.name.encode("utf-8", "replace").decode("utf-8")
    return "".join("\ufffd" if unicodedata.category(c) == "Cc" else c for c in name)


def _read_failure(path: Path, exc: Exception) -> FileRejected:
    """The plain-words reason a file could not be read, naming the file (never its folder)."""
    if isinstance(exc, FileRejected):
        return FileRejected(exc.rule, f"{_shown(path)}: {exc.detail}")
    if isinstance(exc, (zlib.error, gzip.BadGzipFile)):
        cause = f"its gzip compression is damaged ({exc})"
    elif isinstance(exc, EOFError):
        cause = "the gzip file is cut short (it ends inside its compressed data)"
    elif isinstance(exc, OSError):
        cause = exc.strerror or type(exc).__name__
    else:
        cause = f"{type(exc).__name__}: {exc}"
    for shown in {str(path.absolute()), str(path)}:
        cause = cause.replace(shown, _shown(path))
    return FileRejected("unreadable", f"{_shown(path)} cannot be read: {cause}")


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _decode(data: bytes, partial: bool = False) -> tuple[str, str]:
    """UTF-8 (BOM allowed); published spreadsheets pasted to CSV are often Windows-1252; Excel's
    "Unicode text" is UTF-16 with a byte-order mark."""
    for bom, encoding in _BOMS[1:]:
        if data.startswith(bom):
            body = data[len(bom):]
            if partial and len(body) % 2:
                body = body[:-1]                            # a character cut at the read limit
            return body.decode(encoding, errors="replace"), encoding
    if data.startswith(_BOMS[0][0]):
        data = data[3:]                 # the BOM goes even when the rest is not UTF-8
    if data[:4] == b"PK\x03\x04":
        raise FileRejected("unreadable", "this is a zip/xlsx workbook; save the sheet as CSV")
    if b"\x00" in data[:4096]:
        raise FileRejected("unreadable", "binary content (NUL bytes); expected a CSV text file")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if partial and exc.start >= len(data) - 3:       # a character cut at the read limit
            return data[: exc.start].decode("utf-8"), "utf-8"
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _records(text: str, delimiter: str = ",") -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
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

# NHS England has reworded the A&E file's headers over the years (2017-18 to March 2020:
# "Number of A&E attendances Type 1", "Number of attendances over 4hrs Other A&E Department";
# April 2020 on: "A&E attendances Type 1", "Attendances over 4hrs Other Department"; August 2020
# on: booked appointments too). Columns are mapped by these patterns on the normalised header,
# never by position or count, so each wording and any column order or extra column reads alike.
_NUMBER_OF = r"(number of |total )?"
_AE = r"(a ?& ?e|a and e|ae)"
_OVER_4H = r"(over|more than) 4 ?(hours?|hrs?|hs|h)"  # "over 4hrs", "over 4 hours"
_BOOKED = r"booked( appointments?)?"
_DEPARTMENTS = {"type1": r"type ?1", "type2": r"type ?2",
                "other": rf"(other( {_AE})?( departments?)?|types? 3 (and |& )?4)"}   # types 3 and 4
_DTA = r"from (dta|decision to admit) to admission"
_WAITED = r"(patients )?(who have )?(waited|waiting|spending)"
_HOURS = r"(hours?|hrs?|hs|h)"


def _ae_columns() -> dict[str, str]:
    cols = {"period": r"period",
            "org_code": r"((org(anisation)?|provider) )?code",
            "parent_org": r"parent org(anisation)?( name)?",
            "org_name": r"((org(anisation)?|provider) )?name"}
    for dept, name in _DEPARTMENTS.items():
        cols[f"att_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {name}"
    for dept, name in _DEPARTMENTS.items():
        cols[f"att_booked_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {_BOOKED} {name}"
    for dept, name in _DEPARTMENTS.items():
        cols[f"over4h_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {_OVER_4H} {name}"
    for dept, name in _DEPARTMENTS.items():
        cols[f"over4h_booked_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {_OVER_4H} {_BOOKED} {name}"
    # NHS England's header says "4-12 hs" (sic)
    cols["dta_4_12h"] = rf"{_NUMBER_OF}{_WAITED} 4 ?(to )?12 ?{_HOURS} {_DTA}"
    cols["dta_12h"] = rf"{_NUMBER_OF}{_WAITED} (over |more than )?12 ?\+? ?{_HOURS}( or more)? {_DTA}"
    for dept, name in _DEPARTMENTS.items():
        # "via A&E - Type 1", or the workbooks' "via Type 1 A&E"
        cols[f"emadm_ae_{dept}"] = rf"{_NUMBER_OF}emergency admissions via ({_AE} {name}|{name} {_AE})"
    cols["emadm_other"] = rf"{_NUMBER_OF}other emergency admissions( (i e )?not via {_AE})?"
    # Older spreadsheets count waits of more than 4 hours from decision to admit, the 12-hour
    # waits included; the 4-12 hour count is then this minus the 12-hour count (see _read_ae).
    cols["dta_over_4h"] = rf"{_NUMBER_OF}{_WAITED} (over |more than )?4 ?\+? ?{_HOURS}( or more)? {_DTA}"
    return cols


_AE_COLUMNS = _ae_columns()
_AE_TEXT = ("period", "org_code", "parent_org", "org_name")
_AE_COUNTS = tuple(c for c in _AE_COLUMNS if c not in _AE_TEXT and c != "dta_over_4h")  # raw_nhse_ae's
_AE_REQUIRED = ("period", "org_code", "att_type1", "att_type2", "att_other",
                "over4h_type1", "over4h_type2", "over4h_other")
# What a total row says in any of its first four fields; NHS England writes TOTAL, Total or Total .
_TOTAL_WORDS = {"total", "england total", "total england", "grand total", "england"}

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


# A sheet saved from Excel as "Unicode text" or in a European locale is tab- or ;-separated.
_DELIMITERS = (",", "\t", ";")


def _table(text: str) -> tuple[list[list[str]], tuple[int, str] | None]:
    """The records and the recognised header (position, dataset), or None: comma-separated
    first, then the other delimiters. Raises FileRejected when no delimiter gives a header and
    the text is not even readable as comma-separated."""
    comma, error = [], None
    for delimiter in _DELIMITERS:
        if delimiter != "," and delimiter not in text:
            continue
        try:
            records = _records(text, delimiter)
        except FileRejected as rejected:
            error = error or rejected
            continue
        found = _find_header(records)
        if found:
            return records, found
        if delimiter == ",":
            comma = records
    if error and not comma:
        raise error
    return comma, None


def detect_published(path: Path) -> str | None:
    """The dataset a published file holds, judged by its header layout (not its name), or None.

    Never raises: whatever is wrong with the file (damaged compression, undecodable bytes, an
    empty or binary file, a file that vanished), it is simply not a published layout here; the
    loader then rejects it with its own reason."""
    try:
        data = _raw_bytes(Path(path), _HEAD_BYTES)
        text, _ = _decode(data, partial=True)
        lines = text.splitlines(keepends=True)
        if len(data) >= _HEAD_BYTES and len(lines) > 1:
            lines = lines[:-1]                      # drop a line cut at the read limit
        found = _table("".join(lines[: _HEADER_SEARCH_RECORDS * 4]))[1]
    except Exception:           # noqa: BLE001 - a sniffer's answer to any damage is "not mine"
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


_INT = re.compile(r"-?\d+")
_WHOLE_FLOAT = re.compile(r"\d+\.0+")        # a spreadsheet's 1234.0
_THOUSANDS = re.compile(r"\d{1,3}(,\d{3})+")
_EMPTY = ("", "-")


def _count(value: str) -> int | None:
    """A published count: digits, maybe with thousands separators or a zero decimal part (1234.0);
    '' or '-' is missing (None). Raises ValueError for anything else, negatives included."""
    v = _clean(value)
    if v in _EMPTY:
        return None
    if _THOUSANDS.fullmatch(v):
        v = v.replace(",", "")
    if _WHOLE_FLOAT.fullmatch(v):
        v = v.split(".")[0]
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

    def __init__(self, records: list[list[str]], headers: list[str], used: Iterable[int]):
        self.records = records
        self.headers = headers
        self.named = max((i for i, h in enumerate(headers) if h.strip()), default=-1) + 1
        # A row may stop short of stray header fields after the last column it is read from.
        self.needed = max(used, default=-1) + 1
        self.quarantined: dict[int, tuple[str, str]] = {}

    def quarantine(self, line: int, rule: str, detail: str) -> None:
        self.quarantined.setdefault(line, (rule, detail))

    def shape_ok(self, line: int, rec: list[str]) -> bool:
        """Blank records and records whose fields do not line up with the header are quarantined."""
        if not any(v.strip() for v in rec):
            self.quarantine(line, "blank_row", "every field is empty")
            return False
        if len(rec) < self.needed:
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


def _read_table(path: Path) -> tuple[list[list[str]], tuple[int, str] | None, str]:
    """Records, recognised header and encoding. Any failure to read is a FileRejected naming
    the file, whatever raised it (I/O, damaged gzip, a CSV the csv module cannot parse)."""
    try:
        text, encoding = _decode(_raw_bytes(path))
        records, found = _table(text)
    except Exception as exc:    # noqa: BLE001 - every cause becomes one plain rejection
        raise _read_failure(path, exc) from None
    return records, found, encoding


def data_records(path: Path) -> int:
    """Data records after the recognised header: what a rejected published file counts as its
    rows (0 when the file cannot be read or no known header is found)."""
    try:
        records, found, _ = _read_table(Path(path))
    except FileRejected:
        return 0
    return len(records) - found[0] - 1 if found else 0


def read_published(path: Path, *, year: int | None = None) -> PublishedFile:
    """Parse a published file recognised by its header.

    `year` gives the mid-year of an ONS population table when neither its title lines nor its
    file name say it. Raises FileRejected(rule, detail) when the file cannot be read, its layout
    is not recognised, a required column is missing or its month cannot be read from its rows.
    """
    path = Path(path)
    records, found, encoding = _read_table(path)
    if not any(any(v.strip() for v in rec) for rec in records):
        raise FileRejected("unknown_layout", f"{_shown(path)} is empty: no header, no rows")
    if found is None:
        raise FileRejected("unknown_layout", f"{_shown(path)}: the header matches no published layout "
                           "(NHS England A&E monthly, discharge sitrep, ONS mid-year estimates)")
    index, dataset = found
    preamble = [" ".join(v.strip() for v in rec if v.strip()) for rec in records[:index]]
    headers, data = records[index], records[index + 1:]
    notes = [f"read as {encoding}"] if encoding != "utf-8" else []
    if index:
        notes.append(f"{index} title line(s) above the header skipped")
    try:
        if dataset == "nhse_ae":
            result = _read_ae(headers, data)
        elif dataset == "nhse_discharge":
            result = _read_discharge(headers, data)
        else:
            result = _read_ons(headers, data, preamble, path.name, year)
    except FileRejected:
        raise
    except Exception as exc:    # noqa: BLE001 - one odd file is rejected, it never stops a run
        raise FileRejected("unreadable", f"{_shown(path)} could not be parsed as {dataset}: "
                           f"{type(exc).__name__}: {exc}") from None
    if result.rows_in != result.rows_loaded + len(result.quarantined) + result.check_rows:
        raise FileRejected("unreadable", f"{_shown(path)}: its {result.rows_in} records could not all "
                           "be accounted for as loaded, quarantined or checks; not loaded")
    result.notes[:0] = notes
    return result


def _require(cols: dict[str, int], required, dataset: str) -> None:
    missing = [c for c in required if c not in cols]
    if missing:
        raise FileRejected("missing_column", f"{dataset}: required column(s) missing: {', '.join(missing)}")


# --------------------------------------------------------------------------------------------
# NHS England A&E monthly provider file

def _is_total_row(rec: list[str], cols: dict[str, int]) -> bool:
    """NHS England's England row: TOTAL, Total or 'Total ' in any of the first four fields (some
    files leave Period, Org Code and Parent Org empty and say TOTAL only in Org name)."""
    fields = rec[:4] + [rec[cols[name]] for name in _AE_TEXT if name in cols]
    return any(_norm(v) in _TOTAL_WORDS for v in fields)


def _read_ae(headers: list[str], data: list[list[str]]) -> PublishedFile:
    cols = _match(headers, _AE_COLUMNS)
    _require(cols, _AE_REQUIRED, "nhse_ae")
    rows = _Rows(data, headers, cols.values())
    # Only the columns this layout has: a measure it lacks (booked appointments before August
    # 2020) is None on every row, never 0, and has no total to check.
    counts_present = [c for c in _AE_COLUMNS if c in cols and c not in _AE_TEXT]

    parsed: dict[int, dict] = {}
    totals: list[tuple[int, dict, str | None, str]] = []
    for line, rec in enumerate(data, start=1):
        if not rows.shape_ok(line, rec):
            continue
        period_raw = _clean(rec[cols["period"]])
        if _is_total_row(rec, cols):
            values, bad = _numbers(rec, cols, counts_present, headers)
            totals.append((line, values, bad, period_raw))
            continue
        org = _clean(rec[cols["org_code"]]).upper()
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

    file_period = _ae_file_period(parsed)
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
    total = totals[0] if totals else None
    for line, *_ in totals[1:]:
        rows.quarantine(line, "duplicate_total", f"a second TOTAL row (the first is data row {total[0]})")

    loaded = [line for line in parsed if line not in rows.quarantined]
    df = _ae_frame(loaded, parsed, file_period, counts_present)
    checks = _ae_checks(df, total, file_period, counts_present, headers, cols)
    notes = []
    if "dta_over_4h" in cols and "dta_4_12h" not in cols:
        notes.append("4-12 hour waits from decision to admit are the file's waits over 4 hours "
                     "minus its waits over 12 hours")
    missing = [c for c in _AE_COUNTS if c not in counts_present and c != "dta_4_12h"]
    if missing:
        notes.append(f"this layout has no {', '.join(missing)}: NULL on every row")
    return PublishedFile("nhse_ae", "NHSE", file_period, df, rows.quarantine_list(), len(totals[:1]),
                         len(data), checks, layout="monthly_provider", periods=[file_period],
                         notes=notes)


def _ae_file_period(parsed: dict[int, dict]) -> str:
    """The file's month is the month its provider rows state (the most common one)."""
    months = Counter(p["period"] for p in parsed.values())
    if not months:
        raise FileRejected("no_period", "no provider row carries a readable Period "
                           "(expected e.g. 'MSitAE-MARCH-2026')")
    file_period = months.most_common(1)[0][0]
    if len(months) > 1 and months.most_common(2)[1][1] == months[file_period]:
        raise FileRejected("no_period", f"provider rows disagree on the month: {dict(months)}")
    return file_period


def _dta_4_12h(values: dict) -> int | None:
    """Waits of 4-12 hours from decision to admit: published, else (older layouts) the waits
    over 4 hours minus those over 12 hours."""
    if values.get("dta_4_12h") is not None or values.get("dta_over_4h") is None:
        return values.get("dta_4_12h")
    over_12h = values.get("dta_12h") or 0
    return values["dta_over_4h"] - over_12h if values["dta_over_4h"] >= over_12h else None


def _ae_frame(loaded: list[int], parsed: dict[int, dict], file_period: str,
              counts_present: list[str]) -> pl.DataFrame:
    """The rows raw_nhse_ae takes: every count column, None where the layout lacks it (plus an
    older layout's waits over 4 hours from decision to admit, kept for the TOTAL check)."""
    counts = _AE_COUNTS + (("dta_over_4h",) if "dta_over_4h" in counts_present else ())
    frame = {"line_number": loaded, "period": [month_start(file_period)] * len(loaded)}
    for name in ("org_code", "parent_org", "org_name"):
        frame[name] = [parsed[line][name] for line in loaded]
    for name in counts:
        frame[name] = [parsed[line]["values"].get(name) for line in loaded]
    frame["dta_4_12h"] = [_dta_4_12h(parsed[line]["values"]) for line in loaded]
    schema = {"line_number": pl.Int64, "period": pl.Date, "org_code": pl.Utf8, "parent_org": pl.Utf8,
              "org_name": pl.Utf8, **{c: pl.Int64 for c in counts}}
    return pl.DataFrame(frame, schema=schema)


def _ae_checks(df: pl.DataFrame, total, file_period: str, counts_present: list[str],
               headers: list[str], cols: dict[str, int]) -> list[dict]:
    """The file's TOTAL row against the sum of its loaded provider rows, column by column (only
    the columns the file has: a derived column is checked through the ones it comes from)."""
    if total is None:
        return [{"check": "england_total", "column": None, "published": None, "computed": None,
                 "ok": False, "detail": "the file has no TOTAL row"}]
    t_line, t_values, t_bad, t_period = total
    checks = []
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
    t_month = _parse_month(t_period) if _norm(t_period) not in _TOTAL_WORDS else None
    if t_month is not None and t_month != file_period:
        checks.append({"check": "total_period", "column": "period", "published": t_month,
                       "computed": file_period, "ok": False})
    return checks


# --------------------------------------------------------------------------------------------
# NHS England discharge sitrep by trust and day

def _read_discharge(headers: list[str], data: list[list[str]]) -> PublishedFile:
    cols = _match(headers, _DISCHARGE_COLUMNS)
    _require(cols, ("org_code", "date"), "nhse_discharge")
    measures = [m for m in _DISCHARGE_MEASURES if m in cols]
    if not ({"nctr", "discharges"} & set(measures)):
        raise FileRejected("missing_column", "nhse_discharge: neither patients not meeting the criteria "
                           "to reside nor discharges")
    rows = _Rows(data, headers, cols.values())
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

    rows = _Rows(data, headers, [*cols.values(), *ages])
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
