"""Rendered reports: the pages that exist, their structure (golden outlines), what they say and
how they say it (accessible, self-contained), all from the tiny database in report_db.py."""
from __future__ import annotations

import csv
import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from page_outline import assert_matches_golden
from report_db import (
    CORNWALL,
    CORNWALL_ICB,
    GM_ICB,
    SCILLY,
    TRAFFORD,
    add_local_metric,
    add_provider_count_metric,
)

from flows.publish import figures, report_data, sdc, wording
from flows.publish.figures import Against, Change
from flows.publish.report import render_reports

MONTH_DIRS = ("2025-10", "2025-11")
PAGES = (CORNWALL, SCILLY, TRAFFORD, CORNWALL_ICB, GM_ICB)


def _page(rendered: Path, code: str, month: str = "2025-11") -> str:
    return (rendered / month / f"{code}.html").read_text(encoding="utf-8")


def _all_pages(rendered: Path) -> list[Path]:
    return sorted(rendered.rglob("*.html"))


# --- what is written ----------------------------------------------------------------------------

def test_every_page_and_export_of_each_month_is_written(rendered):
    for month in MONTH_DIRS:
        names = {p.name for p in (rendered / month).iterdir()}
        assert names == {f"{c}.html" for c in PAGES} | {"figures.csv", "figures.json"}
    assert (rendered / "index.html").exists()


def test_index_lists_every_page_and_month_and_its_links_resolve(rendered):
    html = (rendered / "index.html").read_text(encoding="utf-8")
    links = set(re.findall(r'href="([^"#]+)"', html))
    expected = {f"{m}/{c}.html" for m in MONTH_DIRS for c in PAGES}
    expected |= {f"{m}/figures.{ext}" for m in MONTH_DIRS for ext in ("csv", "json")}
    assert expected <= links
    assert html.index("November 2025") < html.index("October 2025")     # newest first


def test_every_local_link_resolves(rendered):
    for page in _all_pages(rendered):
        html = page.read_text(encoding="utf-8")
        ids = set(re.findall(r' id="([^"]+)"', html))
        for href in re.findall(r'href="([^"]+)"', html):
            if href.startswith("#"):
                assert href[1:] in ids, (page.name, href)
            elif not href.startswith("data:"):
                assert (page.parent / href).resolve().exists(), (page.name, href)


def test_pages_are_self_contained(rendered):
    for page in _all_pages(rendered):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r"<(script|img|iframe|link rel=\"stylesheet\")", html), page
        assert not re.search(r'\ssrc=|url\((?!#)|@import', html), page
        assert "Content-Security-Policy" in html


# --- golden outlines ------------------------------------------------------------------------------

def test_hwb_page_outline(rendered):
    assert_matches_golden("hwb_page", _page(rendered, SCILLY))


def test_icb_page_outline(rendered):
    assert_matches_golden("icb_page", _page(rendered, CORNWALL_ICB))


def test_index_outline(rendered):
    assert_matches_golden("index", (rendered / "index.html").read_text(encoding="utf-8"))


# --- content --------------------------------------------------------------------------------------

def test_summary_comes_first_then_one_section_per_metric_in_catalogue_order(rendered):
    html = _page(rendered, CORNWALL)
    positions = [html.index(f'id="{anchor}"') for anchor in (
        "summary", "metric-emergency_admissions_65plus", "metric-discharge_to_usual_residence",
        "metric-discharge_delay_days", "metric-reablement_at_home_91d", "data-quality",
        "methodology")]
    assert positions == sorted(positions)


def test_reading_is_generated_from_the_published_numbers(rendered):
    html = _page(rendered, CORNWALL)
    assert re.search(r'class="reading">[\d,.]+ per 100,000 in November 2025: (up|down) \d+% on '
                     r'November 2024, \d+ admissions (above|below) plan \(provisional\)\.', html)


def test_reading_sentence():
    metric = report_data.Metric("x", "Emergency admissions", "per_100k", False, "admissions", "people",
                           1613.0, "", None, None, None, 1)
    now = sdc.publish_cell(520, 200_000, scale=100_000)
    before = sdc.publish_cell(500, 200_000, scale=100_000)
    fig = figures.Figure(now, 200.0, "final",
                        Against(60.0, sdc.publish_difference(121, suppressed=False), "per_100k",
                                "admissions", planned=True, suppressed=False),
                        figures.RAG["red"], sdc.Cost(None), sdc.Count(None), sdc.Cost(None))
    year_ago = figures.Figure(before, None, "final", None, figures.RAG["none"], sdc.Cost(None),
                             sdc.Count(None), sdc.Cost(None))
    assert wording.reading(metric, date(2025, 11, 1), fig, year_ago) == (
        "260.0 per 100,000 in November 2025: up 4% on November 2024, 120 admissions above plan.")


@pytest.mark.parametrize("value, plan, higher_is_better, code", [
    (100.0, 100.0, False, "green"), (95.0, 100.0, False, "green"), (105.0, 100.0, False, "amber"),
    (105.1, 100.0, False, "red"), (95.0, 100.0, True, "amber"), (94.9, 100.0, True, "red"),
    (101.0, 100.0, True, "green"), (50.0, None, True, "none"),
])
def test_rag_rule(value, plan, higher_is_better, code):
    cell = sdc.Cell(sdc.Count(None, national=True), sdc.Count(None, national=True), value, 1,
                    national=True)
    assert figures.rag_status(cell, plan, higher_is_better).code == code


def test_rag_is_never_colour_alone(rendered):
    html = _page(rendered, CORNWALL_ICB)
    tags = re.findall(r'<strong class="tag tag--(\w+)"><span aria-hidden="true">(.)</span> ([^<]+)</strong>', html)
    assert {code for code, _s, _l in tags} >= {"green", "red", "none"}
    assert all(symbol.strip() and label.strip() for _c, symbol, label in tags)
    assert figures.RAG_RULE in html.replace("&#39;", "'")


@pytest.mark.parametrize("ch, text", [
    (Change(4.04, False), "up 4.0%"), (Change(-1.25, True), "down 1.2 percentage points"),
    (Change(0.01, False), "no change"), (Change(None, False), "not available"),
])
def test_change_wording(ch, text):
    assert wording.format_change(ch) == text


def test_costs_appear_only_where_a_unit_cost_applies(rendered):
    text = (rendered / "2025-11" / "figures.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    cornwall = {r["metric_id"]: r for r in rows if r["area_code"] == CORNWALL}
    admissions = cornwall["emergency_admissions_65plus"]
    assert float(admissions["variance_cost"]) == float(admissions["variance_count"]) * 1613
    assert cornwall["discharge_to_usual_residence"]["variance_cost"] == ""


def test_data_quality_section(rendered):
    html = _page(rendered, TRAFFORD, "2025-11")
    dq = html[html.index('id="data-quality"'):html.index('id="methodology"')]
    assert "Manchester University NHS Foundation Trust" in dq
    assert "Sep 2025" in dq                          # the missing R0A file made September provisional
    assert "duplicate_key" in dq and "Invalid NHS numbers" in dq
    scilly = _page(rendered, SCILLY)
    assert "carehome_E06000053_2025-11.csv" in scilly and "missing_columns: ADMISSION_DATE" in scilly


def test_methodology_comes_from_the_catalogue(rendered):
    html = _page(rendered, CORNWALL)
    methods = html[html.index('id="methodology"'):]
    for text in ("BCF 2025-26 metric 1", "ASCOF 2B(1)", "sql/metrics/discharge_delay_days.sql",
                 "£1,613", "Spells admitted in the month with an emergency admission method"):
        assert text in methods


def test_a_metric_added_to_the_catalogue_appears_everywhere(report_con, tmp_path):
    add_local_metric(report_con)
    index = render_reports(report_con, tmp_path / "r", [date(2025, 11, 1)])
    page = (index.parent / "2025-11" / f"{CORNWALL}.html").read_text(encoding="utf-8")
    assert page.count('href="#metric-falls_admissions_65plus"') == 2         # contents and summary
    assert 'id="metric-falls_admissions_65plus"' in page and "PHOF C29" in page
    icb = (index.parent / "2025-11" / f"{CORNWALL_ICB}.html").read_text(encoding="utf-8")
    assert 'id="metric-falls_admissions_65plus"' in icb
    exported = json.loads((index.parent / "2025-11" / "figures.json").read_text(encoding="utf-8"))
    assert any(f["metric_id"] == "falls_admissions_65plus" for f in exported["figures"])
    # its sort_order (25) puts it between discharges to usual residence (20) and delays (30)
    assert page.index('id="metric-discharge_to_usual_residence"') < page.index(
        'id="metric-falls_admissions_65plus"') < page.index('id="metric-discharge_delay_days"')


def test_a_provider_level_count_shows_where_it_has_figures(report_con, tmp_path):
    add_provider_count_metric(report_con)
    index = render_reports(report_con, tmp_path / "r", [date(2025, 11, 1)])
    folder = index.parent / "2025-11"
    assert 'id="metric-ae_attendances"' in (folder / f"{CORNWALL_ICB}.html").read_text(encoding="utf-8")
    assert "ae_attendances" not in (folder / f"{CORNWALL}.html").read_text(encoding="utf-8")
    rows = [r for r in csv.DictReader((folder / "figures.csv").read_text(encoding="utf-8").splitlines())
            if r["metric_id"] == "ae_attendances"]
    assert {r["area_type"] for r in rows} == {"icb", "england"}
    icb = next(r for r in rows if r["area_code"] == CORNWALL_ICB)
    assert icb["value"] == icb["numerator"] and float(icb["numerator"]) % 5 == 0


def test_a_month_rendered_alone_gives_the_same_pages(report_con, tmp_path, rendered):
    render_reports(report_con, tmp_path / "r", [date(2025, 11, 1)])
    for code in PAGES:
        assert (tmp_path / "r" / "2025-11" / f"{code}.html").read_text(encoding="utf-8") == \
            _page(rendered, code)


def test_an_unknown_month_renders_nothing_for_it(report_con, tmp_path):
    index = render_reports(report_con, tmp_path / "r", [date(2030, 1, 1)])
    assert index.exists() and not list((tmp_path / "r").glob("2030-01"))


# --- accessibility, checked in the HTML -----------------------------------------------------------

class _A11y(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings: list[int] = []
        self.th_without_scope = 0
        self.svgs: list[dict] = []
        self.icons: list[dict] = []
        self.figures = 0
        self.tables = 0
        self.captions = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        self.th_without_scope += tag == "th" and "scope" not in a
        # an icon is decorative (aria-hidden) beside its text label; every other svg is a chart
        self.svgs += [a] if tag == "svg" and not a.get("data-icon") else []
        self.icons += [a] if tag == "svg" and a.get("data-icon") else []
        self.figures += tag == "figure"
        self.tables += tag == "table"
        self.captions += tag == "caption"


@pytest.mark.parametrize("code", [SCILLY, CORNWALL_ICB, "index"])
def test_headings_tables_and_charts_are_accessible(rendered, code):
    path = rendered / "index.html" if code == "index" else rendered / "2025-11" / f"{code}.html"
    html = path.read_text(encoding="utf-8")
    a11y = _A11y()
    a11y.feed(html)
    assert a11y.headings[0] == 1 and a11y.headings.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(a11y.headings, a11y.headings[1:])), "a heading level is skipped"
    assert a11y.th_without_scope == 0
    assert a11y.tables == a11y.captions
    assert all(s.get("role") == "img" and s.get("aria-label") for s in a11y.svgs)
    assert a11y.figures == len(a11y.svgs)
    assert all(i.get("aria-hidden") == "true" for i in a11y.icons)
    assert '<html lang="en-GB">' in html


def test_every_chart_has_its_data_in_a_table(rendered):
    html = _page(rendered, CORNWALL)
    for metric in ("emergency_admissions_65plus", "discharge_delay_days"):
        section = html[html.index(f'id="metric-{metric}"'):]
        assert section.index("<svg") < section.index("(the data in the chart)</caption>")
        table = section[section.index("<tbody>"):section.index("</tbody>")]
        assert table.count("<tr>") == figures.WINDOW_MONTHS


def test_charts_have_page_unique_ids(rendered):
    html = _page(rendered, CORNWALL_ICB)
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))
