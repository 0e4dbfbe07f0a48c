"""Statistical disclosure control for everything joinedup publishes (HTML pages, CSV and JSON).

The rule (NHS Digital, HES/ECDS from September 2018; docs/domain-reference.md §4.1, contract §4):
below England level a count of 1–7 is shown as `*`, any other count is rounded to the nearest 5,
and rates, percentages and means are computed from the rounded counts and suppressed where their
numerator (or their denominator) is. England-level figures are published as they are.

One exemption, driven by the metric catalogue: a metric whose `rollup` is listed in
EXEMPT_ROLLUPS (today `provider`: NHS England's A&E and discharge statistics by hospital trust)
is published as it is for each provider. Those figures are aggregate statistics by organisation
that NHS England has already published, not counts of patients living in an area, so rounding
or suppressing them would protect no one and would only disagree with the public source. They
still pass through this module (`publish_cell(..., exempt=metric_id)`), are marked with the
metric they belong to, and the blocking check accepts the mark only for a metric whose
catalogue row has an exempt roll-up; every other metric, the contract metrics included, is
checked exactly as before.

Published figures are `Count`, `Cell` and `Cost` objects made only by the `publish_*` functions.
`check_publishable` is the blocking check run on every page context and export before anything
is written: it raises `DisclosureError` if an unsuppressed small count, an unrounded count, a
raw number under a count's name, or a figure marked exempt for a metric the catalogue does not
exempt would reach the output.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache

from flows.errors import DisclosureError

SUPPRESSION_THRESHOLD = 7   # counts 1..7 inclusive are suppressed below England level
ROUNDING_MULTIPLE = 5       # other counts are rounded to the nearest 5 (half up)
SUPPRESSED = "*"            # how a suppressed figure is written

# Catalogue roll-ups (metric_catalog.rollup) whose figures for each organisation are published as
# they are, with the reason. Only these may carry an exemption mark past `check_publishable`.
EXEMPT_ROLLUPS = {
    "provider": (
        "NHS England publishes these statistics for every provider each month (A&E attendances "
        "and emergency admissions, the acute discharge situation report): they are aggregate "
        "figures by organisation already in the public domain, not counts of patients living in "
        "an area, so they are shown exactly as published."
    ),
}

# Names under which a plain number would be a count about people: the check refuses them.
COUNT_FIELDS = frozenset({
    "numerator", "denominator", "variance_count", "ytd_variance_count", "count", "rows", "spells",
})
# Values the check does not look into: no count can hide in them (a number is refused only under
# a count's name, COUNT_FIELDS).
_PLAIN = (str, bytes, bool, int, float, date, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)     # the exact types, for a quick test of a whole sequence
# Relative tolerance when checking that a published value was computed from published counts.
_CONSISTENCY = 1e-9


@dataclass(frozen=True)
class Count:
    """A published count: `n` is None when suppressed or when there is no figure."""

    n: int | float | None
    suppressed: bool = False
    national: bool = False
    # A difference (e.g. admissions above plan): may be negative or small but is still rounded.
    signed: bool = False
    # The metric whose published-as-is figure this is (EXEMPT_ROLLUPS); None for every other count.
    exempt: str | None = None


@dataclass(frozen=True)
class Cell:
    """A published value with the counts it was computed from: scale × num / den, or for a
    count metric (scale None) the numerator itself."""

    numerator: Count
    denominator: Count
    value: float | None
    scale: float | None
    suppressed: bool = False
    national: bool = False
    exempt: str | None = None      # as Count.exempt


@dataclass(frozen=True)
class Cost:
    """£ derived from a published count, so it cannot be divided back into an exact count."""

    amount: float | None
    suppressed: bool = False


def round_to_multiple(n: float) -> int:
    """Round half away from zero to the nearest ROUNDING_MULTIPLE (12.5 -> 15, -12.5 -> -15)."""
    steps = math.floor(abs(n) / ROUNDING_MULTIPLE + 0.5)
    return int(math.copysign(steps * ROUNDING_MULTIPLE, n)) if steps else 0


def _plain(n: float) -> int | float:
    return int(n) if float(n).is_integer() else n


def publish_count(n: float | None, *, national: bool = False) -> Count:
    """A count of people or events, ready to publish."""
    if n is None:
        return Count(None, national=national)
    if national:
        return Count(_plain(n), national=True)
    if n == 0:
        return Count(0)
    if abs(n) <= SUPPRESSION_THRESHOLD:
        return Count(None, suppressed=True)
    return Count(round_to_multiple(n))


def exempt_count(n: float | None, metric_id: str) -> Count:
    """A count of a metric exempt by its catalogue roll-up (EXEMPT_ROLLUPS): published as it is,
    marked with the metric so that `check_publishable` can verify the exemption."""
    return Count(None if n is None else _plain(n), exempt=metric_id)


def publish_difference(d: float | None, *, suppressed: bool, national: bool = False,
                       exempt: str | None = None) -> Count:
    """A difference in counts (e.g. admissions above plan): rounded to the nearest 5, and
    suppressed where the figure it belongs to is (`suppressed`); as it is for an exempt metric."""
    if exempt is not None:
        return Count(None if d is None else _plain(d), signed=True, exempt=exempt)
    if d is None:
        return Count(None, national=national, signed=True)
    if national:
        return Count(_plain(d), national=True, signed=True)
    if suppressed:
        return Count(None, suppressed=True, signed=True)
    return Count(round_to_multiple(d), signed=True)


def publish_cell(numerator: float | None, denominator: float | None, *, scale: float | None,
                 national: bool = False, value: float | None = None,
                 exempt: str | None = None) -> Cell:
    """A rate, percentage, mean or (scale None) count. Below England it is recomputed from the
    rounded counts; at England level `value` (the unsuppressed source value) is kept when given.
    With `exempt` (the metric id of a metric whose catalogue roll-up is in EXEMPT_ROLLUPS) the
    counts are kept as they are and the value is computed from them."""
    if exempt is not None:
        num, den = exempt_count(numerator, exempt), exempt_count(denominator, exempt)
        return Cell(num, den, ratio(num, den, scale), scale, exempt=exempt)
    num = publish_count(numerator, national=national)
    den = publish_count(denominator, national=national)
    if num.suppressed or den.suppressed:
        return Cell(num, den, None, scale, suppressed=True)
    if national and value is not None:
        return Cell(num, den, value, scale, national=True)
    return Cell(num, den, ratio(num, den, scale), scale, national=national)


def ratio(num: Count, den: Count, scale: float | None) -> float | None:
    """scale × num / den from published counts (None without a denominator); a count metric
    (scale None) is its numerator."""
    if scale is None:
        return num.n
    if num.n is None or not den.n:
        return None
    return scale * num.n / den.n


def publish_cost(count: Count, unit_cost: float | None) -> Cost:
    """£ = published count × unit cost; suppressed where the count is."""
    if unit_cost is None or (count.n is None and not count.suppressed):
        return Cost(None)
    if count.suppressed:
        return Cost(None, suppressed=True)
    return Cost(count.n * unit_cost)


def national_cost(amount: float | None) -> Cost:
    """England-level £ figures are published as computed."""
    return Cost(amount)


def as_published(figure: Count | Cell | Cost | None, digits: int | None = None):
    """The plain value written to CSV/JSON: `*`, a number, or None."""
    if figure is None:
        return None
    if figure.suppressed:
        return SUPPRESSED
    value = {Count: "n", Cell: "value", Cost: "amount"}[type(figure)]
    number = getattr(figure, value)
    return round(number, digits) if digits is not None and number is not None else number


# --- the blocking check ---------------------------------------------------------------------

def exempt_metrics(rollups: Mapping[str, str | None]) -> frozenset[str]:
    """The metric ids whose catalogue roll-up ({metric_id: rollup}) is in EXEMPT_ROLLUPS."""
    return frozenset(m for m, rollup in rollups.items() if rollup in EXEMPT_ROLLUPS)


def check_publishable(obj: object, *, where: str,
                      rollups: Mapping[str, str | None] | None = None,
                      checked: dict[int, object] | None = None) -> None:
    """Raise DisclosureError if anything in `obj` (a page context or export rows) would
    publish an unsuppressed small count, an unrounded count, or a raw number as a count.

    `rollups` is the metric catalogue's {metric_id: rollup}: a figure marked exempt passes only
    if its metric's roll-up is in EXEMPT_ROLLUPS (without `rollups`, no exemption is accepted).

    `checked` (optional, for one `rollups`) remembers the frozen dataclasses found clean, so a
    figure shared by many pages of a month is walked once, not once per page and section: a
    frozen object's problems depend only on itself. It keeps each object alive, so an id it
    holds cannot be reused by another object."""
    exempt = exempt_metrics(rollups or {})
    if _is_clean(obj, exempt, {} if checked is None else checked):
        return
    problems = list(_problems(obj, "context", exempt, {}))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DisclosureError(f"refusing to publish {where}: {problems[0]}{more}")


def _is_clean(obj: object, exempt: frozenset[str], clean: dict[int, object]) -> bool:
    """The walk of `_problems`, answering only whether there is any: a page holds thousands of
    values and is almost always clean, so paths and messages are built only when a problem is
    found (by walking it again with `_problems`). The cheapest tests come first: a plain value,
    then a figure already found clean (most figures are shared by many pages)."""
    kind = type(obj)
    if kind in _PLAIN_TYPES or id(obj) in clean or isinstance(obj, _PLAIN):
        return True
    if kind is dict or isinstance(obj, Mapping):
        return _items_clean(obj.items(), exempt, clean)
    if isinstance(obj, (list, tuple, set, frozenset)):
        # a chart's series: dozens of plain values, their types checked in one C-level pass
        return (_PLAIN_TYPES.issuperset(map(type, obj))
                or all(isinstance(item, _PLAIN) or _is_clean(item, exempt, clean) for item in obj))
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return True
    if kind is Count or kind is Cell or isinstance(obj, (Count, Cell)):
        found = next(iter(_dataclass_problems(obj, "", exempt, clean)), None) is not None
    else:
        found = not _items_clean(((name, getattr(obj, name)) for name in _field_names(kind)),
                                 exempt, clean)
    if not found and _is_frozen(kind):
        clean[id(obj)] = obj
    return not found


def _items_clean(items, exempt: frozenset[str], clean: dict[int, object]) -> bool:
    for key, value in items:
        if type(value) in _PLAIN_TYPES or isinstance(value, _PLAIN):
            if key in COUNT_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
                return False
        elif not _is_clean(value, exempt, clean):
            return False
    return True


def _problems(obj: object, path: str, exempt: frozenset[str], clean: dict[int, object]) -> Iterator[str]:
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, (dict, Mapping)):
        yield from _children(obj.items(), path, exempt, clean)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, item in enumerate(obj):
            if not isinstance(item, _PLAIN):     # a plain value in a list is no count's
                yield from _problems(item, f"{path}[{i}]", exempt, clean)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if id(obj) in clean:
            return
        found = list(_dataclass_problems(obj, path, exempt, clean))
        if not found and _is_frozen(type(obj)):
            clean[id(obj)] = obj
        yield from found


def _dataclass_problems(obj: object, path: str, exempt: frozenset[str],
                        clean: dict[int, object]) -> Iterator[str]:
    if isinstance(obj, Count):
        yield from _count_problems(obj, path, exempt)
    elif isinstance(obj, Cell):
        yield from _cell_problems(obj, path, exempt)
    else:
        yield from _children(((name, getattr(obj, name)) for name in _field_names(type(obj))),
                             path, exempt, clean)


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@cache
def _is_frozen(cls: type) -> bool:
    return cls.__dataclass_params__.frozen


def _children(items, path: str, exempt: frozenset[str], clean: dict[int, object]) -> Iterator[str]:
    for key, value in items:
        if not isinstance(value, _PLAIN):
            yield from _problems(value, f"{path}.{key}", exempt, clean)
        elif key in COUNT_FIELDS and isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{path}.{key} is a raw number ({value}); counts must pass through flows.publish.sdc"


def _exemption_problem(metric_id: str, path: str, exempt: frozenset[str]) -> Iterator[str]:
    if metric_id not in exempt:
        yield (f"{path} is marked published-as-is for {metric_id!r}, whose catalogue roll-up is "
               f"not exempt from disclosure control")


def _count_problems(c: Count, path: str, exempt: frozenset[str]) -> Iterator[str]:
    if c.national:
        return
    if c.exempt is not None:
        yield from _exemption_problem(c.exempt, path, exempt)
        if c.suppressed:
            yield f"{path} is marked both suppressed and published as is"
        return
    if c.suppressed:
        if c.n is not None:
            yield f"{path} is marked suppressed but carries {c.n}"
        return
    if c.n is None:
        return
    if not float(c.n).is_integer() or c.n % ROUNDING_MULTIPLE:
        yield f"{path} = {c.n} is not rounded to a multiple of {ROUNDING_MULTIPLE}"
    elif not c.signed and 0 < c.n <= SUPPRESSION_THRESHOLD:
        yield f"{path} = {c.n} is an unsuppressed small count"


def _cell_problems(cell: Cell, path: str, exempt: frozenset[str]) -> Iterator[str]:
    yield from _count_problems(cell.numerator, f"{path}.numerator", exempt)
    yield from _count_problems(cell.denominator, f"{path}.denominator", exempt)
    if cell.national:
        return
    if cell.exempt is not None:
        yield from _exemption_problem(cell.exempt, path, exempt)
        if cell.exempt != cell.numerator.exempt or cell.exempt != cell.denominator.exempt:
            yield f"{path} is published as is but its counts are not those of {cell.exempt!r}"
    if cell.numerator.suppressed or cell.denominator.suppressed:
        if cell.value is not None or not cell.suppressed:
            yield f"{path} shows a value although its counts are suppressed"
        return
    expected = ratio(cell.numerator, cell.denominator, cell.scale)
    if (expected is None) != (cell.value is None) or (
            expected is not None and not math.isclose(expected, cell.value, rel_tol=_CONSISTENCY)):
        yield f"{path}.value = {cell.value} is not computed from the published counts"
