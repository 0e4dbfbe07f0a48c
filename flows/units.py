"""Metric units, read from the code list the SQL reads too (sql/reference/ref_units.csv).

A metric's header names its unit; `metric_areas` computes value = scale x numerator / denominator
from the same file, and reports label and recompute published values from it here, so a unit's
scale and label are written once.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

from flows import SQL_DIR

UNITS_FILE = SQL_DIR / "reference" / "ref_units.csv"


@dataclass(frozen=True)
class Unit:
    name: str
    scale: int | float
    has_denominator: bool   # False: a count, whose value is its numerator
    label: str


def _number(text: str) -> int | float:
    """100000 stays an int, so published values are computed exactly as before."""
    return int(text) if text.isdigit() else float(text)


def _read_units() -> dict[str, Unit]:
    with open(UNITS_FILE, newline="", encoding="utf-8") as f:
        return {row["unit"]: Unit(row["unit"], _number(row["scale"]),
                                  row["has_denominator"] == "true", row["label"])
                for row in csv.DictReader(f)}


UNITS = _read_units()


def scale(unit: str) -> int | float | None:
    """value = scale x numerator / denominator; None for a count (its value is its numerator).
    A unit not in the list is read as a plain ratio (scale 1)."""
    known = UNITS.get(unit)
    if known is None:
        return 1
    return known.scale if known.has_denominator else None


def label(unit: str) -> str:
    """How a report names the unit ('per 100,000', '%'); a unit not in the list by its name."""
    known = UNITS.get(unit)
    return known.label if known else unit
