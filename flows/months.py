"""Months: the one home of month arithmetic. A month is the date of its first day."""
from __future__ import annotations

from datetime import date, timedelta

from flows.errors import BadMonth


def month_start(period: str) -> date:
    """'2025-10' -> date(2025, 10, 1); raises ValueError when it is not a real month."""
    year, month = period.split("-")
    return date(int(year), int(month), 1)


def parse_month(text: str) -> date:
    """'2025-10' -> date(2025, 10, 1), or a BadMonth error a person can act on."""
    try:
        if len(text) != 7 or text[4] != "-":
            raise ValueError
        return month_start(text)
    except (ValueError, AttributeError):
        raise BadMonth(f"'{text}' is not a month: write it as YYYY-MM, e.g. 2025-10") from None


def month_code(month: date) -> str:
    return month.strftime("%Y-%m")


def add_months(month: date, k: int) -> date:
    total = month.year * 12 + month.month - 1 + k
    return date(total // 12, total % 12 + 1, 1)


def next_month(month: date) -> date:
    return add_months(month, 1)


def month_end(month: date) -> date:
    """The month's last day."""
    return next_month(month) - timedelta(days=1)


def previous_month(today: date | None = None) -> date:
    """The month a scheduled run reports: the calendar month before today."""
    return add_months((today or date.today()).replace(day=1), -1)


def month_range(first: date, last: date) -> list[date]:
    """Every month from `first` to `last`, both included; empty when `last` is before `first`."""
    months, current = [], first
    while current <= last:
        months.append(current)
        current = next_month(current)
    return months


def requested_range(first: date, last: date) -> list[date]:
    """A range a person asked for (--from/--to): an error, not nothing, when it is backwards."""
    if last < first:
        raise BadMonth(f"--from {first:%Y-%m} is after --to {last:%Y-%m}")
    return month_range(first, last)


def financial_year_start(month: date) -> date:
    """1 April of the NHS financial year the month falls in."""
    return date(month.year if month.month >= 4 else month.year - 1, 4, 1)
