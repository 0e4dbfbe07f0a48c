"""Parse landing file names: <dataset>_<org_code>_<YYYY-MM>[_<free text>].<csv|csv.gz|parquet>."""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from flows.errors import FileRejected
from flows.ingest.identifiers import could_be_nhs_number, withhold_numbers
from flows.months import month_start

PERIODIC_DATASETS = ("apc", "reablement", "carehome")
REFERENCE_DATASETS = ("population", "plan", "orgs", "changes")
EXTENSIONS = (".csv.gz", ".csv", ".parquet")

_PERIODIC = re.compile(
    r"^(?P<dataset>[a-z]+)_(?P<org>[A-Za-z0-9]+)_(?P<period>\d{4}-\d{2})(?:_(?P<free>.+))?$")
_REFERENCE = re.compile(r"^(?P<dataset>[a-z]+)_(?P<org>[A-Za-z0-9]+)(?:_(?P<free>.+))?$")
# A year or financial year in a reference file's free text ("2024", "2025-26") is its edition.
_EDITION = re.compile(r"^(\d{4}(?:-\d{2})?)")


@dataclass(frozen=True)
class FileName:
    name: str
    dataset: str
    org_code: str
    period: str | None      # YYYY-MM for periodic datasets
    edition: str | None     # reference files: the year in the name, part of their identity
    free_text: str | None
    extension: str

    @property
    def identity(self) -> tuple:
        """Files with the same identity replace each other (a resubmission)."""
        return (self.dataset, self.org_code.upper(), self.period or self.edition)

    @property
    def period_start(self) -> date | None:
        return month_start(self.period) if self.period else None


# Longer names are shortened for display (Linux allows 255 bytes; a report cell does not).
DISPLAY_NAME_MAX = 160


def display_name(name: str, limit: int = DISPLAY_NAME_MAX) -> str:
    """A file name as joinedup stores and shows it: readable text, whatever the bytes.

    Bytes that are not UTF-8 (Python keeps them as surrogates) show as \\xNN, control and
    format characters (a newline, an escape, a right-to-left override) as \\uNNNN, a very long
    name is shortened in the middle, and any run of digits that could be an NHS number is
    withheld. The name on disk is untouched.
    """
    raw = os.fsencode(name).decode("utf-8", "backslashreplace")
    shown = "".join(_visible(ch) for ch in raw)
    if len(shown) > limit:
        keep = limit // 2 - 1
        shown = f"{shown[:keep]}…{shown[-keep:]}"
    return withhold_numbers(shown)


def _visible(ch: str) -> str:
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return f"\\u{ord(ch):04x}" if ord(ch) > 0xFF else f"\\x{ord(ch):02x}"
    return ch


def _check_characters(name: str) -> None:
    """Names are text a person can read and type; anything else is renamed at source."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise FileRejected("file_name", "the name holds bytes that are not UTF-8 text") from None
    hidden = sorted({f"U+{ord(c):04X}" for c in name
                     if unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn", "Zl", "Zp")})
    if hidden:
        raise FileRejected("file_name", "the name holds control or invisible characters "
                           f"({', '.join(hidden)})")


def split_extension(name: str) -> tuple[str, str]:
    lower = name.lower()
    for ext in EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)], ext
    raise FileRejected("file_name", "extension must be .csv, .csv.gz or .parquet")


def parse_file_name(name: str) -> FileName:
    """Parse a landing file name or raise FileRejected naming what is wrong with it."""
    _check_characters(name)
    stem, ext = split_extension(name)
    dataset = stem.split("_", 1)[0].lower()
    if dataset in PERIODIC_DATASETS:
        return _parse_periodic(name, stem, ext)
    if dataset in REFERENCE_DATASETS:
        return _parse_reference(name, stem, ext)
    raise FileRejected("file_name", f"unknown dataset '{dataset}'; expected one of "
                       f"{', '.join(PERIODIC_DATASETS + REFERENCE_DATASETS)}")


def _lower_dataset(stem: str) -> str:
    """Dataset names are matched case-insensitively; org codes keep their case."""
    dataset = stem.split("_", 1)[0]
    return dataset.lower() + stem[len(dataset):]


def _check_org_code(org: str) -> None:
    """An organisation code is stored and shown: it must not be a number that could be an
    NHS number (ODS and ONS codes are at most nine characters)."""
    if could_be_nhs_number(org):
        raise FileRejected("file_name", "the organisation code in the name is a run of ten or "
                           "more digits, which could be an NHS number; use the ODS or ONS code")


def _parse_periodic(name: str, stem: str, ext: str) -> FileName:
    match = _PERIODIC.match(_lower_dataset(stem))
    if not match:
        raise FileRejected("file_name", "name must be <dataset>_<org_code>_<YYYY-MM>[_<text>]")
    _check_org_code(match["org"])
    try:
        month_start(match["period"])
    except ValueError:
        raise FileRejected("file_name", f"'{match['period']}' is not a month (YYYY-MM)") from None
    return FileName(name, match["dataset"], match["org"], match["period"], None, match["free"], ext)


def _parse_reference(name: str, stem: str, ext: str) -> FileName:
    match = _REFERENCE.match(_lower_dataset(stem))
    if not match:
        raise FileRejected("file_name", "name must be <dataset>_<org_code>[_<text>]")
    _check_org_code(match["org"])
    edition = _EDITION.match(match["free"] or "")
    return FileName(name, match["dataset"], match["org"], None,
                    edition.group(1) if edition else None, match["free"], ext)
