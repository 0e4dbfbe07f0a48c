"""What the report reads from the database, once per run: the metric catalogue, the areas,
every figure with its plan variance, SPC points, changes, deliveries, data quality and linkage.

`load_report_data` reads the months a run renders (with the window before them) into a
`ReportData`; every page, chart and export of those months is made from it, never from more
queries. Reads only metric_values, metric_catalog, metric_plan_variance, metric_spc,
stg_changes, orgs, load_log, quarantine, deliveries, data_quality and linkage_rate.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import duckdb

from flows import ENGLAND_CODE, units
from flows.db import relation_exists
from flows.months import month_code, month_range
from flows.settings import SpcSettings

ORG_AREA_TYPE = {"HWB": "hwb", "ICB": "icb", "PROVIDER": "provider"}
PROVIDER_ROLLUP = "provider"  # metric_catalog.rollup of measures published by hospital provider
# England's health and wellbeing boards are its upper-tier local authorities: 151 from 2019, 153
# since April 2023. An orgs file listing at least this many English HWBs covers England, and only
# then is the total over the areas loaded labelled England.
ENGLAND_HWB_MIN = 151
COUNCIL_DATASETS = ("reablement", "carehome")


# --- what the tables hold ---------------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    metric_id: str
    title: str
    unit: str
    higher_is_better: bool
    numerator_label: str
    denominator_label: str
    unit_cost: float | None
    definition: str
    official_id: str | None
    source: str | None
    sql_file: str | None
    sort_order: int
    rollup: str = "hwb"           # metric_catalog.rollup: hwb (by residence) or provider

    @property
    def by_provider(self) -> bool:
        return self.rollup == PROVIDER_ROLLUP

    @property
    def scale(self) -> int | None:
        return units.scale(self.unit)

    @property
    def unit_label(self) -> str:
        return units.label(self.unit)

    @property
    def anchor(self) -> str:
        return "metric-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.metric_id)


@dataclass(frozen=True)
class Area:
    code: str
    name: str
    type: str                 # hwb | icb | england | provider
    parent: str | None = None

    @property
    def href(self) -> str:
        return f"{self.code}.html"


@dataclass(frozen=True)
class Source:
    """One metric_values row with its metric_plan_variance row (unsuppressed: never published)."""

    numerator: float | None
    denominator: float | None
    value: float | None
    plan_value: float | None
    status: str | None
    variance: float | None = None
    variance_count: float | None = None
    variance_cost: float | None = None
    ytd_variance_count: float | None = None
    ytd_variance_cost: float | None = None


@dataclass
class ReportData:
    """Everything the pages of the requested months need, read once from the database."""

    metrics: list[Metric]
    areas: dict[str, Area]
    sources: dict[tuple[str, date, str], Source]      # (area_code, month, metric_id)
    present: dict[date, dict[str, str]]                # every month: area code -> area type
    deliveries: list[dict]
    quarantined: list[dict]
    rejected: list[dict]
    quality: list[dict]
    spc: dict[tuple[str, date, str], SpcPoint] = field(default_factory=dict)  # (area, month, metric)
    changes: list[dict] = field(default_factory=list)       # stg_changes rows
    spc_settings: SpcSettings = field(default_factory=SpcSettings)
    covers_england: bool = False      # orgs lists every HWB in England: the total is England's
    _figures: dict = field(default_factory=dict)            # memo of figure()
    _published_spc: dict = field(default_factory=dict)      # memo of figures.publish_spc
    _ytd_sums: dict = field(default_factory=dict)           # memo of figures._ytd_sums
    checked: dict = field(default_factory=dict)             # sdc: figures found clean (check_publishable)
    # joined-up care (extracts 3a): the linked metrics and each council's linkage by month
    linked_metric_ids: frozenset[str] = frozenset()
    linkage: list[dict] = field(default_factory=list)

    @cached_property
    def linkage_by_council(self) -> dict[str, list[dict]]:
        """The linkage rows of each council (la_code), read by every page of its area."""
        rows: dict[str, list[dict]] = defaultdict(list)
        for row in self.linkage:
            rows[row["la_code"]].append(row)
        return rows

    def figure(self, area: Area, month: date, metric: Metric):
        """The published figure (figures.Figure), computed once per area, month and metric."""
        from flows.publish.figures import publish_figure  # figures builds on these types

        key = (area.code, month, metric.metric_id)
        if key not in self._figures:
            self._figures[key] = publish_figure(self, area, month, metric)
        return self._figures[key]


@dataclass(frozen=True)
class SpcPoint:
    """One metric_spc row (computed from the unrounded values; published through `publish_spc`)."""

    rebase_group: int
    is_used: bool
    used_months: int | None
    min_points: int | None
    mean: float | None
    lpl: float | None
    upl: float | None
    point_type: str | None
    variation: str | None
    assurance: str | None
    prior_mean: float | None
    prior_point_type: str | None


# --- reading the tables ---------------------------------------------------------------------------

def query_rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def load_report_data(con: duckdb.DuckDBPyConnection, first: date, last: date) -> ReportData:
    """Read the months first..last (and the metric catalogue and orgs) from the database."""
    between = [first, last]
    periods = [month_code(m) for m in month_range(first, last)]
    return ReportData(
        metrics=_load_metrics(con),
        areas=_load_areas(con),
        sources=_load_sources(con, between),
        present=_load_present(con),
        deliveries=query_rows(con, "select period_month, dataset, org_code, received from deliveries "
                              "where period_month between ? and ? order by all", between),
        quarantined=query_rows(con, _QUARANTINE_SQL, [periods]),
        rejected=query_rows(con, "select file_name, org_code, dataset, period, reason, rows_in from load_log "
                            "where status = 'rejected' and period in ? order by file_name", [periods]),
        quality=query_rows(con, "select period_month, area_code, measure, value from data_quality "
                           "where period_month between ? and ?", between),
        linked_metric_ids=_load_linked_metric_ids(con),
        linkage=_load_linkage(con, between),
        spc=_load_spc(con, between),
        changes=_load_changes(con),
        spc_settings=_spc_settings(con),
        covers_england=_covers_england(con),
    )


def _load_spc(con, between: list[date]) -> dict[tuple[str, date, str], SpcPoint]:
    """The SPC points of the months shown, and of every month since the earliest local change
    before them (a change's "did it work?" line reads its months)."""
    if not relation_exists(con, "metric_spc"):
        return {}
    changes = "(select min(change_month) from stg_changes)" if relation_exists(con, "stg_changes") else "null"
    rows = query_rows(con, f"""
        select area_code, period_month, metric_id, rebase_group, is_used, used_months, min_points,
               mean, lpl, upl, point_type, variation, assurance, prior_mean, prior_point_type
        from metric_spc
        where period_month between least(?::date, {changes}) and ?""", between)
    return {(r.pop("area_code"), r.pop("period_month"), r.pop("metric_id")): SpcPoint(**r)
            for r in rows}


def load_index_data(con: duckdb.DuckDBPyConnection) -> ReportData:
    """What the index needs (the catalogue, the areas and the months each area has figures
    for), when no month's pages are rendered."""
    return ReportData(metrics=_load_metrics(con), areas=_load_areas(con), sources={},
                      present=_load_present(con), deliveries=[], quarantined=[], rejected=[],
                      quality=[])


# What every month's pages are made from, digested in the database: the figures joinedup
# stored (metric_cells), the plans beside them, the catalogue, orgs and local changes, and the
# loaded files (every raw row comes from one: statuses, deliveries, data quality, quarantine,
# linkage). Every view a page reads (metric_values with its roll-ups, plan and status,
# metric_spc, ...) is a function of these and of the SQL, which page_cache.month_key adds;
# digesting stored tables rather than the views keeps this a few milliseconds however many
# years are loaded. Each relation's rows are unique, so the XOR of their MD5s digests the set
# whatever order they are read in. A month's SPC reads later months too (runs and trends), so
# every month depends on all of this, not on its own rows.
FINGERPRINT_SQL = {
    "metric_cells": "select count(*), bit_xor(md5_number(r::varchar)) from metric_cells as r",
    "raw_plan": "select count(*), bit_xor(md5_number(r::varchar)) from raw_plan as r",
    "metric_catalog": "select count(*), bit_xor(md5_number(r::varchar)) from metric_catalog as r",
    "orgs": "select count(*), bit_xor(md5_number(r::varchar)) from orgs as r",
    "stg_changes": "select count(*), bit_xor(md5_number(r::varchar)) from stg_changes as r",
    "files": "select count(*), bit_xor(md5_number(row(file_id, sha256, status)::varchar)) from files",
}


def inputs_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """One text that changes whenever anything a report page can show changes in the database
    (FINGERPRINT_SQL, and the SPC settings), read without computing any view of the report."""
    parts = [f"{name}={con.execute(sql).fetchone() if relation_exists(con, name) else 'absent'}"
             for name, sql in FINGERPRINT_SQL.items()]
    return "\n".join([*parts, repr(_spc_settings(con))])


def _load_changes(con) -> list[dict]:
    if not relation_exists(con, "stg_changes"):
        return []
    return query_rows(con, "select area_code, metric_id, change_month, description from stg_changes "
                      "order by change_month, metric_id")


def _spc_settings(con) -> SpcSettings:
    """The settings the connection gives metric_spc (flows.settings.apply_spc_settings)."""
    defaults = SpcSettings()
    min_points, fix_after, screen = con.execute(
        "select getvariable('spc_min_points'), getvariable('spc_fix_after'), "
        "getvariable('spc_screen_outliers')").fetchone()
    return SpcSettings(min_points=int(min_points) if min_points is not None else defaults.min_points,
                       fix_after=int(fix_after) if fix_after is not None else None,
                       screen_outliers=bool(screen) if screen is not None else defaults.screen_outliers)


def _covers_england(con) -> bool:
    english_hwbs = con.execute("select count(distinct org_code) from orgs "
                               "where upper(org_type) = 'HWB' and org_code like 'E%'").fetchone()[0]
    return english_hwbs >= ENGLAND_HWB_MIN


# A file name can appear more than once in load_log (a duplicate is logged again); count each
# quarantined row once, against the files that are in effect.
_QUARANTINE_SQL = """
    with files as (
        select distinct file_name, org_code, dataset, period
        from load_log
        where status in ('loaded', 'rejected') and period in ?
    )
    select f.org_code, f.dataset, f.period, q.rule, count(*) as rows
    from quarantine as q
    join files as f using (file_name)
    group by all
    order by all
"""


def _load_metrics(con) -> list[Metric]:
    # The runner adds `rollup` to the catalogue; a catalogue made before it has only HWB metrics.
    has_rollup = con.execute("select count(*) from duckdb_columns() where table_name = "
                             "'metric_catalog' and column_name = 'rollup'").fetchone()[0] > 0
    rollup = "coalesce(rollup, 'hwb')" if has_rollup else "'hwb'"
    rows = query_rows(con, "select metric_id, title, unit, higher_is_better, numerator_label, "
                      "denominator_label, unit_cost, definition, official_id, source, sql_file, "
                      f"sort_order, {rollup} as rollup from metric_catalog "
                      "order by sort_order, metric_id")
    return [Metric(**r) for r in rows]


def _load_sources(con, between: list[date]):
    rows = query_rows(con, """
        select v.period_month, v.area_type, v.area_code, v.metric_id, v.numerator, v.denominator,
               v.value, v.plan_value, v.status, p.variance, p.variance_count, p.variance_cost,
               p.ytd_variance_count, p.ytd_variance_cost
        from metric_values as v
        left join metric_plan_variance as p using (period_month, area_type, area_code, metric_id)
        where v.period_month between ? and ?""", between)
    sources = {}
    for r in rows:
        key = (r.pop("area_code"), r.pop("period_month"), r.pop("metric_id"))
        del r["area_type"]
        sources[key] = Source(**r)
    return sources


def _load_present(con) -> dict[date, dict[str, str]]:
    present: dict[date, dict[str, str]] = defaultdict(dict)
    for r in query_rows(con, "select distinct period_month, area_code, area_type from metric_values"):
        present[r["period_month"]][r["area_code"]] = r["area_type"]
    return present


def _load_areas(con) -> dict[str, Area]:
    areas = {r["org_code"]: Area(r["org_code"], r["org_name"] or r["org_code"],
                                 ORG_AREA_TYPE.get(r["org_type"], r["org_type"].lower()),
                                 r["parent_code"])
             for r in query_rows(con, "select org_code, org_type, org_name, parent_code from orgs")}
    areas[ENGLAND_CODE] = Area(ENGLAND_CODE, "England", "england")
    return areas


def _load_linked_metric_ids(con) -> frozenset[str]:
    """Metrics that follow people from hospital into council data: the catalogue's metrics that
    read hospital spells and a council dataset (none in a catalogue made before `datasets`)."""
    has_datasets = con.execute("select count(*) from duckdb_columns() where table_name = "
                               "'metric_catalog' and column_name = 'datasets'").fetchone()[0] > 0
    if not has_datasets:
        return frozenset()
    rows = con.execute("""select metric_id from metric_catalog
                          where list_contains(datasets, 'apc')
                            and list_has_any(datasets, ?::varchar[])""",
                       [list(COUNCIL_DATASETS)]).fetchall()
    return frozenset(r[0] for r in rows)


def _load_linkage(con, between: list[date]) -> list[dict]:
    """Each council's rows with a person id and those linked to a hospital spell, by month
    (nothing when the database has no `linkage_rate` view)."""
    exists = con.execute("select count(*) from duckdb_views() where view_name = 'linkage_rate'"
                         ).fetchone()[0] > 0
    if not exists:
        return []
    return query_rows(con, """select period_month, la_code, dataset, rows_with_person_id, rows_linked
                         from linkage_rate where period_month between ? and ?""", between)
