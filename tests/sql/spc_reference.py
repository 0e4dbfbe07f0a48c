"""A plain-Python reading of the Making Data Count rules, written apart from the SQL view so the
tests can check metric_spc against a second implementation on many series.

A series is a list of months, each (value or None, final?), one per calendar month, with the
index of the month each rebase group starts at.
"""
from __future__ import annotations

from dataclasses import dataclass

LIMIT = 2.66
NEAR = 2 * LIMIT / 3


@dataclass
class Month:
    value: float | None
    final: bool = True


def _groups(n: int, starts: list[int]) -> list[int]:
    group, out = 0, []
    for i in range(n):
        if i in starts and i > 0:
            group += 1
        out.append(group)
    return out


def group_limits(months: list[Month], *, min_points=12, fix_after=None, screen=False):
    """(mean, mean moving range) of a group's months, or None when it has too few used months."""
    used = [m.value is not None and m.final for m in months]
    if sum(used) < min_points:
        return None
    basis, count = [], 0
    for u in used:
        count += u
        basis.append(u and (fix_after is None or count <= fix_after))
    values = [m.value for m, b in zip(months, basis) if b]
    ranges = [abs(months[i].value - months[i - 1].value)
              for i in range(1, len(months)) if basis[i] and basis[i - 1]]
    if not ranges:
        return None
    mean_range = sum(ranges) / len(ranges)
    if screen:
        kept = [r for r in ranges if r < 3.267 * mean_range]
        mean_range = sum(kept) / len(kept)
    return sum(values) / len(values), mean_range


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def directions(values: list[float], mean: float, mean_range: float) -> list[tuple[int | None, str | None]]:
    """(direction, rule) of each point of one group, in order."""
    n = len(values)
    upl, lpl = mean + LIMIT * mean_range, mean - LIMIT * mean_range
    unl, lnl = mean + NEAR * mean_range, mean - NEAR * mean_range
    side = [_sign(v - mean) for v in values]
    outside = [1 if v > upl else -1 if v < lpl else None for v in values]
    near = [1 if unl < v <= upl else -1 if lpl <= v < lnl else 0 for v in values]

    run: list[int | None] = [None] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and side[j + 1] == side[i]:
            j += 1
        if side[i] != 0 and j - i + 1 >= 7:
            for k in range(i, j + 1):
                run[k] = side[i]
        i = j + 1

    trend: list[int | None] = [None] * n
    for d in (1, -1):
        i = 0
        while i < n:
            j = i
            while j + 1 < n and _sign(values[j + 1] - values[j]) == d:
                j += 1
            if j - i + 1 >= 7:
                for k in range(i, j + 1):
                    # a point both ends one trend and starts another: the one it ends wins
                    if trend[k] is None or k != i:
                        trend[k] = d
            i = max(j, i + 1)

    two: list[int | None] = [None] * n
    for s in range(n - 2):
        w = range(s, s + 3)
        if side[s] != 0 and all(side[k] == side[s] for k in w) and sum(near[k] != 0 for k in w) >= 2:
            for k in w:
                if near[k] != 0:
                    two[k] = near[k]

    out = []
    for k in range(n):
        for rule, d in (("outside_limits", outside[k]), ("trend", trend[k]),
                        ("two_in_three", two[k]), ("run", run[k])):
            if d is not None:
                out.append((d, rule))
                break
        else:
            out.append((None, None))
    return out


def point_type(direction: int | None, higher_is_better: bool | None) -> str:
    if direction is None:
        return "common_cause"
    if higher_is_better is None:
        return "special_cause_neutral_high" if direction > 0 else "special_cause_neutral_low"
    return "special_cause_improvement" if (direction > 0) == higher_is_better else "special_cause_concern"


def spc(months: list[Month], *, starts=(), higher_is_better=True, **options) -> list[dict]:
    """One dict per month: rebase_group, mean, lpl, upl, point_type, rule."""
    groups = _groups(len(months), list(starts))
    rows = [{"rebase_group": g, "mean": None, "lpl": None, "upl": None, "point_type": None,
             "rule": None} for g in groups]
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        limits = group_limits([months[i] for i in idx], **options)
        if limits is None:
            continue
        mean, mr = limits
        pts = [i for i in idx if months[i].value is not None]
        dirs = directions([months[i].value for i in pts], mean, mr)
        for i in idx:
            rows[i].update(mean=mean, lpl=mean - LIMIT * mr, upl=mean + LIMIT * mr)
        for i, (d, rule) in zip(pts, dirs):
            rows[i].update(point_type=point_type(d, higher_is_better), rule=rule)
    return rows
