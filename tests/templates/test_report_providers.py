"""Hospitals against England: the providers of the page's ICB on the provider-level measures
(catalogue rollup 'provider'), with England, shown as NHS England published them."""
from __future__ import annotations

import csv
import re
from datetime import date

import duckdb
import pytest
from page_outline import assert_matches_golden
from report_db import (
    COMMUNITY_PROVIDER,
    CORNWALL,
    CORNWALL_ICB,
    ENGLAND,
    GM_ICB,
    PROVIDER_METRICS,
    SCILLY,
    TRAFFORD,
    add_provider_metrics,
)
from test_report_render import _A11y

from flows.publish import figures, sdc
from flows.publish.report import render_reports

NOV = date(2025, 11, 1)
CORNWALL_PROVIDERS = {"REF": "Royal Cornwall Hospitals NHS Trust",
                      COMMUNITY_PROVIDER: "Cornwall Partnership NHS Foundation Trust"}
GM_PROVIDERS = {"R0A": "Manchester University NHS Foundation Trust"}


@pytest.fixture(scope="module")
def provider_db(report_db_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("providers") / "report.duckdb"
    path.write_bytes(report_db_path.read_bytes())
    with duckdb.connect(str(path)) as con:
        add_provider_metrics(con)
    return path


@pytest.fixture(scope="module")
def provider_reports(provider_db, tmp_path_factory):
    reports = tmp_path_factory.mktemp("provider_reports")
    with duckdb.connect(str(provider_db), read_only=True) as con:
        render_reports(con, reports, [NOV])
    return reports / "2025-11"


def _page(folder, code: str) -> str:
    return (folder / f"{code}.html").read_text(encoding="utf-8")


def _section(html: str) -> str:
    return html[html.index('<section id="providers"'):html.index('<section id="data-quality"')]


def _month_table(section: str) -> str:
    return section[section.index("<table>"):section.index("</table>")]


@pytest.mark.parametrize("code, providers, others", [
    (CORNWALL, CORNWALL_PROVIDERS, GM_PROVIDERS),        # an HWB page: its parent ICB's providers
    (SCILLY, CORNWALL_PROVIDERS, GM_PROVIDERS),
    (CORNWALL_ICB, CORNWALL_PROVIDERS, GM_PROVIDERS),
    (TRAFFORD, GM_PROVIDERS, CORNWALL_PROVIDERS),
    (GM_ICB, GM_PROVIDERS, CORNWALL_PROVIDERS),
])
def test_page_shows_each_provider_of_its_icb_and_england(provider_reports, code, providers, others):
    html = _page(provider_reports, code)
    section = _section(html)
    assert '<h2 id="providers-heading">Hospitals against England</h2>' in section
    rows = re.findall(r'<tr[^>]*>\s*<th scope="row">([^<]+)', _month_table(section))
    assert [r.strip() for r in rows] == sorted(providers.values()) + ["England"]
    assert not any(name in section for name in others.values())
    # one column per provider-level measure, in the catalogue's order
    header = _month_table(section)[:_month_table(section).index("</thead>")]
    columns = [re.sub(r"<[^>]+>", "", t).replace("&amp;", "&")
               for t in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', header)]
    expected = ["Provider"] + [m[1] for m in sorted(PROVIDER_METRICS, key=lambda m: m[6])]
    assert len(columns) == len(expected)
    assert all(c.startswith(title) for c, title in zip(columns, expected)), columns
    assert "shown as published, without suppression or rounding" in section
    # listed in the contents, in page order, and the link resolves
    contents = html[html.index('id="contents-heading"'):html.index('id="summary"')]
    assert '<a href="#providers">Hospitals against England</a>' in contents
    assert contents.index("#metric-") < contents.index("#providers") < contents.index("#data-quality")


def test_provider_figures_are_shown_as_published(provider_reports, provider_db):
    with duckdb.connect(str(provider_db), read_only=True) as con:
        raw = dict(con.execute("select area_code, numerator from metric_values where metric_id = "
                               "'ae_dta_12h' and period_month = ?", [NOV]).fetchall())
    assert 0 < raw["REF"] <= sdc.SUPPRESSION_THRESHOLD             # would be * below England
    row = re.search(r'Royal Cornwall Hospitals NHS Trust.*?</tr>', _section(_page(provider_reports, CORNWALL)),
                    re.S).group(0)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[[m[0] for m in PROVIDER_METRICS].index("ae_dta_12h")] == f"{raw['REF']:,.0f}"
    exported = {(r["area_code"], r["metric_id"]): r for r in csv.DictReader(
        (provider_reports / "figures.csv").read_text(encoding="utf-8").splitlines())}
    assert float(exported[("REF", "ae_dta_12h")]["numerator"]) == raw["REF"]
    # the ICB's sum is still disclosure-controlled, as is every contract metric
    assert exported[(CORNWALL_ICB, "ae_dta_12h")]["numerator"] == sdc.SUPPRESSED   # REF + RJ8 = 3
    assert float(exported[(GM_ICB, "ae_dta_12h")]["numerator"]) % sdc.ROUNDING_MULTIPLE == 0
    assert exported[(SCILLY, "emergency_admissions_65plus")]["numerator"] == sdc.SUPPRESSED
    assert float(exported[(ENGLAND, "ae_dta_12h")]["numerator"]) == raw[ENGLAND]


def test_percentages_have_a_chart_per_provider_against_england_with_its_data(provider_reports):
    section = _section(_page(provider_reports, CORNWALL_ICB))
    percent = [m[0] for m in PROVIDER_METRICS if m[2] == "percent"]
    assert [f"providers-metric-{m}" for m in percent] == re.findall(r'<h3 id="([^"]+)"', section)
    trend = section[section.index('id="providers-metric-ae_within_4h_all"'):
                    section.index('id="providers-metric-ae_within_4h_type1"')]
    labels = re.findall(r'<svg[^>]* aria-label="([^"]+)"', trend)
    assert len(labels) == len(CORNWALL_PROVIDERS)
    assert all("with England" in label and "plan" not in label for label in labels)
    assert "Plan (dashed)" not in trend
    assert "(the data in the charts)</caption>" in trend
    table = trend[trend.index("<tbody>"):trend.index("</tbody>")]
    assert table.count("<tr>") == figures.WINDOW_MONTHS
    # type 1: only the provider with type 1 departments is charted
    type1 = section[section.index('id="providers-metric-ae_within_4h_type1"'):]
    assert type1.count("<svg") == 1 and CORNWALL_PROVIDERS[COMMUNITY_PROVIDER] not in type1


@pytest.mark.parametrize("code", [SCILLY, CORNWALL_ICB])
def test_section_is_accessible_and_self_contained(provider_reports, code):
    html = _page(provider_reports, code)
    a11y = _A11y()
    a11y.feed(html)
    assert all(b - a <= 1 for a, b in zip(a11y.headings, a11y.headings[1:]))
    assert a11y.th_without_scope == 0 and a11y.tables == a11y.captions
    assert all(s.get("role") == "img" and s.get("aria-label") for s in a11y.svgs)
    assert a11y.figures == len(a11y.svgs)
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    for href in re.findall(r'href="#([^"]+)"', html):
        assert href in ids, href


def test_methodology_defines_the_provider_measures_on_hwb_pages(provider_reports):
    methods = _page(provider_reports, CORNWALL)[_page(provider_reports, CORNWALL).index('id="methodology"'):]
    for _mid, title, *_rest in PROVIDER_METRICS:
        assert f">{title.replace('&', '&amp;')}</h3>" in methods
    assert figures.PROVIDER_RULE.replace("'", "&#39;") in methods


def test_section_is_left_out_without_provider_figures(rendered):
    for code in (CORNWALL, SCILLY, CORNWALL_ICB):
        html = (rendered / "2025-11" / f"{code}.html").read_text(encoding="utf-8")
        assert 'id="providers"' not in html and "Hospitals against England" not in html


def test_hwb_page_with_providers_outline(provider_reports):
    assert_matches_golden("hwb_page_providers", _page(provider_reports, SCILLY))


def test_icb_page_with_providers_outline(provider_reports):
    assert_matches_golden("icb_page_providers", _page(provider_reports, CORNWALL_ICB))
