"""Parse landing file names: <dataset>_<org_code>_<YYYY-MM>[_<free text>].<csv|csv.gz|parquet>."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from flows.errors import FileRejected

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


def month_start(period: str) -> date:
    """'2025-10' -> date(2025, 10, 1); raises ValueError when it is not a real month."""
    year, month = period.split("-")
    return date(int(year), int(month), 1)


def split_extension(name: str) -> tuple[str, str]:
    lower = name.lower()
    for ext in EXTENSIONS:
        if lower.endswith(ext):
            return name[: -len(ext)], ext
    raise FileRejected("file_name", "extension must be .csv, .csv.gz or .parquet")


def parse_file_name(name: str) -> FileName:
    """Parse a landing file name or raise FileRejected naming what is wrong with it."""
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


def _parse_periodic(name: str, stem: str, ext: str) -> FileName:
    match = _PERIODIC.match(_lower_dataset(stem))
    if not match:
        raise FileRejected("file_name", "name must be <dataset>_<org_code>_<YYYY-MM>[_<text>]")
    try:
        month_start(match["period"])
    except ValueError:
        raise FileRejected("file_name", f"'{match['period']}' is not a month (YYYY-MM)") from None
    return FileName(name, match["dataset"], match["org"], match["period"], None, match["free"], ext)


def _parse_reference(name: str, stem: str, ext: str) -> FileName:
    match = _REFERENCE.match(_lower_dataset(stem))
    if not match:
        raise FileRejected("file_name", "name must be <dataset>_<org_code>[_<text>]")
    edition = _EDITION.match(match["free"] or "")
    return FileName(name, match["dataset"], match["org"], None,
                    edition.group(1) if edition else None, match["free"], ext)
