"""What every published layout shares: the file's text (size cap, gzip, encodings), header
matching, values (months, counts, dates) and the rules every layout applies to its rows."""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import polars as pl

from flows.errors import FileRejected

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

    def with_code(self, column: int, rule: str) -> Iterator[tuple[int, list[str], str]]:
        """(line, record, code in upper case) of each record of good shape (`shape_ok`) whose
        code column is filled; a record with an empty code is quarantined under `rule`."""
        for line, rec in enumerate(self.records, start=1):
            if not self.shape_ok(line, rec):
                continue
            code = _clean(rec[column]).upper()
            if not code:
                self.quarantine(line, rule, f"{self.headers[column].strip()} is empty")
                continue
            yield line, rec, code

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


def _require(cols: dict[str, int], required, dataset: str) -> None:
    missing = [c for c in required if c not in cols]
    if missing:
        raise FileRejected("missing_column", f"{dataset}: required column(s) missing: {', '.join(missing)}")
