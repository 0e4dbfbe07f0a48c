"""Disclosure control: the rule itself, and the blocking check that refuses to publish."""
from __future__ import annotations

import csv
import json
from datetime import date

import pytest
from report_db import CORNWALL, ENGLAND, SCILLY

from flows.errors import DisclosureError
from flows.publish import exports, sdc, wording
from flows.publish.report import render_reports

NOV = date(2025, 11, 1)


def test_named_constants():
    assert sdc.SUPPRESSION_THRESHOLD == 7
    assert sdc.ROUNDING_MULTIPLE == 5


@pytest.mark.parametrize("n, shown", [
    (None, None), (0, 0), (1, "*"), (7, "*"), (8, 10), (12, 10), (12.5, 15), (13, 15),
    (15, 15), (1234, 1235), (1232, 1230),
])
def test_counts_below_england(n, shown):
    assert sdc.as_published(sdc.publish_count(n)) == shown


def test_england_counts_are_not_controlled():
    assert sdc.publish_count(3, national=True) == sdc.Count(3, national=True)
    assert sdc.publish_count(1232, national=True).n == 1232


def test_rates_use_rounded_counts():
    cell = sdc.publish_cell(12, 23, scale=100)          # 10 / 25, not 12 / 23
    assert (cell.numerator.n, cell.denominator.n, cell.value) == (10, 25, 40.0)
    rate = sdc.publish_cell(312, 150_003, scale=100_000)
    assert rate.value == pytest.approx(100_000 * 310 / 150_005)


def test_ratio_suppressed_where_numerator_or_denominator_is():
    assert sdc.publish_cell(3, 600, scale=100_000).suppressed
    assert sdc.publish_cell(40, 5, scale=1).suppressed      # a mean of 5 stays: 5 people
    assert sdc.as_published(sdc.publish_cell(3, 600, scale=100_000)) == "*"


def test_zero_counts_show_and_no_denominator_gives_no_value():
    assert sdc.publish_cell(0, 600, scale=100_000).value == 0
    assert sdc.publish_cell(0, 0, scale=100).value is None


def test_england_keeps_its_source_value():
    cell = sdc.publish_cell(3, 7, scale=100, national=True, value=300 / 7)
    assert (cell.numerator.n, cell.value) == (3, pytest.approx(42.857, rel=1e-4))


def test_differences_and_costs_follow_their_figure():
    assert sdc.publish_difference(12.4, suppressed=False).n == 10
    assert sdc.publish_difference(-2.4, suppressed=False).n == 0
    assert sdc.publish_difference(-13, suppressed=False).n == -15
    assert sdc.publish_difference(12.4, suppressed=True).suppressed
    cost = sdc.publish_cost(sdc.publish_difference(121, suppressed=False), 1613)
    assert cost.amount == 120 * 1613
    assert sdc.publish_cost(sdc.Count(None, suppressed=True, signed=True), 1613).suppressed
    assert sdc.publish_cost(sdc.Count(10, signed=True), None).amount is None


@pytest.mark.parametrize("leak", [
    sdc.Count(3),                                   # a small count not suppressed
    sdc.Count(12),                                  # a count not rounded
    sdc.Count(7, signed=True),                      # a difference not rounded
    sdc.Count(5, suppressed=True),                  # "suppressed" but carrying its number
    {"numerator": 3},                               # a raw number under a count's name
    {"rows": [{"denominator": 40.0}]},
    sdc.Cell(sdc.Count(10), sdc.Count(25), 100 * 12 / 23, 100),   # value from unrounded counts
    sdc.Cell(sdc.Count(None, suppressed=True), sdc.Count(600), 500.0, 100_000),
])
def test_check_refuses_what_would_disclose(leak):
    with pytest.raises(DisclosureError, match="refusing to publish test"):
        sdc.check_publishable({"page": [leak]}, where="test")


def test_check_accepts_published_figures():
    published = {
        "cells": [sdc.publish_cell(n, 600, scale=100_000) for n in (0, 3, 8, 312)],
        "england": sdc.publish_cell(3, 7, scale=100, national=True, value=300 / 7),
        "difference": sdc.publish_difference(3, suppressed=False),
        "files_received": 24,       # not a count of people: allowed as it is
    }
    sdc.check_publishable(published, where="test")


@pytest.mark.parametrize("leak", [sdc.Count(3), sdc.Cell(sdc.Count(10), sdc.Count(25), 100 * 12 / 23, 100)])
def test_a_figure_shared_by_many_pages_is_refused_on_every_one(leak):
    """The check remembers the frozen figures it found clean within a month (`checked`), never
    those it refused: a leak shared by two pages blocks both, and a clean figure stays clean."""
    checked: dict[int, object] = {}
    clean = sdc.publish_cell(312, 600, scale=100_000)
    for page in ("first", "second"):
        sdc.check_publishable({"a": clean}, where=page, checked=checked)
        with pytest.raises(DisclosureError, match=f"refusing to publish {page}"):
            sdc.check_publishable({"a": clean, "b": [leak]}, where=page, checked=checked)
    assert id(clean) in checked and id(leak) not in checked


def test_templates_refuse_raw_counts():
    with pytest.raises(TypeError, match="flows.publish.sdc"):
        wording.format_count(3)


# --- proved on a small area: the Isles of Scilly -------------------------------------------------

def _csv_rows(path):
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_small_area_is_suppressed_everywhere_it_is_published(rendered):
    rows = {(r["area_code"], r["metric_id"]): r for r in _csv_rows(rendered / "2025-11" / "figures.csv")}
    scilly = rows[(SCILLY, "emergency_admissions_65plus")]
    assert (scilly["numerator"], scilly["value"], scilly["variance_count"]) == ("*", "*", "*")
    page = (rendered / "2025-11" / f"{SCILLY}.html").read_text(encoding="utf-8")
    assert "Not published for November 2025: based on fewer than 8 admissions (provisional)." in page
    figures = json.loads((rendered / "2025-11" / "figures.json").read_text(encoding="utf-8"))["figures"]
    assert {"area_code": SCILLY, "metric_id": "emergency_admissions_65plus", "numerator": "*"}.items() \
        <= next(f for f in figures if f["area_code"] == SCILLY).items()


def test_published_counts_below_england_are_rounded(rendered):
    for row in _csv_rows(rendered / "2025-11" / "figures.csv"):
        for column in ("numerator", "denominator"):
            value = row[column]
            if row["area_type"] != "england" and value not in ("*", ""):
                assert float(value) == 0 or (float(value) >= 10 and float(value) % 5 == 0), row


def test_england_is_published_unrounded(rendered, report_db_path):
    import duckdb
    with duckdb.connect(str(report_db_path), read_only=True) as con:
        (raw,) = con.execute("select numerator from metric_values where area_code = ? and "
                             "metric_id = 'emergency_admissions_65plus' and period_month = ?",
                             [ENGLAND, NOV]).fetchone()
    rows = _csv_rows(rendered / "2025-11" / "figures.csv")
    england = next(r for r in rows if r["area_code"] == ENGLAND)
    assert float(england["numerator"]) == raw


def test_a_leak_blocks_the_page_and_the_export(report_con, tmp_path, monkeypatch):
    """If disclosure control were skipped, nothing of the month would be written."""
    def leaky(n, *, national=False):
        return sdc.Count(n, national=national)       # no suppression, no rounding
    monkeypatch.setattr(sdc, "publish_count", leaky)
    with pytest.raises(DisclosureError, match="refusing to publish"):
        render_reports(report_con, tmp_path / "reports", [NOV])
    assert not list((tmp_path / "reports").glob("*/*.html"))
    assert not list((tmp_path / "reports").rglob("figures.*"))


def test_a_leak_in_the_export_alone_blocks_it(report_con, tmp_path, monkeypatch):
    original = exports._export_row

    def leaky_export(data, month, area, area_type, metric):
        row = original(data, month, area, area_type, metric)
        source = data.sources[(area.code, month, metric.metric_id)]
        return row | {"numerator": source.numerator}  # the unsuppressed number
    monkeypatch.setattr(exports, "_export_row", leaky_export)
    with pytest.raises(DisclosureError, match="figures.csv"):
        render_reports(report_con, tmp_path / "reports", [NOV])
    assert not (tmp_path / "reports" / "2025-11" / f"{CORNWALL}.html").exists()


# --- the catalogue-driven exemption for provider-level measures -----------------------------------

ROLLUPS = {"emergency_admissions_65plus": "hwb", "ae_dta_12h": "provider"}


def test_provider_measures_are_published_as_they_are():
    cell = sdc.publish_cell(3, None, scale=None, exempt="ae_dta_12h")
    assert (cell.numerator.n, cell.value, cell.suppressed) == (3, 3, False)
    rate = sdc.publish_cell(4013, 6702, scale=100, exempt="ae_within_4h_all")
    assert rate.value == pytest.approx(100 * 4013 / 6702)
    sdc.check_publishable({"cell": cell}, where="test", rollups=ROLLUPS)


@pytest.mark.parametrize("leak, rollups", [
    (sdc.publish_cell(3, 600, scale=100_000, exempt="emergency_admissions_65plus"), ROLLUPS),
    (sdc.Count(3, exempt="emergency_admissions_65plus"), ROLLUPS),   # a contract metric
    (sdc.publish_cell(3, None, scale=None, exempt="ae_dta_12h"), None),  # no catalogue given
    (sdc.Count(3, exempt="unknown_metric"), ROLLUPS),
    (sdc.Cell(sdc.Count(3), sdc.Count(None), 3, None, exempt="ae_dta_12h"), ROLLUPS),
    (sdc.Cell(sdc.exempt_count(12, "ae_dta_12h"), sdc.Count(None, exempt="ae_dta_12h"), 10, None,
              exempt="ae_dta_12h"), ROLLUPS),                        # value not from its counts
])
def test_check_refuses_an_exemption_the_catalogue_does_not_give(leak, rollups):
    with pytest.raises(DisclosureError, match="refusing to publish test"):
        sdc.check_publishable({"page": [leak]}, where="test", rollups=rollups)
