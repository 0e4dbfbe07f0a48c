"""The report's SPC parts: charts, icons, the comparator's name, change lines and exports."""
from __future__ import annotations

import csv
import json
from datetime import date

from report_db import CORNWALL, CORNWALL_ICB, SCILLY

from flows.publish import figures, report_data
from flows.publish.report import render_reports


def _page(rendered, code, month="2025-11") -> str:
    return (rendered / month / f"{code}.html").read_text(encoding="utf-8")


def _section(html: str, metric_id: str) -> str:
    start = html.index(f'id="metric-{metric_id}"')
    return html[start:html.index("</section>", start)]


def test_each_metric_chart_is_an_spc_chart_with_a_text_alternative(rendered):
    section = _section(_page(rendered, CORNWALL_ICB), "emergency_admissions_65plus")
    label = section[section.index('aria-label="'):].split('"')[1]
    assert label.startswith("Statistical process control chart of Emergency admissions")
    assert "process limits" in label and "Variation:" in label and "Assurance:" in label
    assert "Mean" in section and "Process limits (dashed)" in section      # the key
    assert "Plan (the target, dashed)" in section
    # the table underneath keeps the figures, with each month's type in words
    assert "<th scope=\"col\">Variation</th>" in section


def test_a_local_change_is_marked_named_and_read(rendered):
    section = _section(_page(rendered, CORNWALL), "discharge_delay_days")
    assert "Discharge to assess service" in section[section.index("<svg"):section.index("</svg>")]
    assert "Limits reset from January 2025: Discharge to assess service." in section
    line = section[section.index('<p class="change-reading">'):].split("</p>")[0]
    assert "Discharge to assess service (from January 2025)" in line
    assert "against the limits from before it" in line and "before" in line and "since" in line
    # ten final months since the change: too few for new limits, and the page says why
    assert "No process limits: fewer than 12 final months" in section
    # the change is Cornwall's own: the ICB's chart is not reset (Cornwall's small chart is)
    icb = _section(_page(rendered, CORNWALL_ICB), "discharge_delay_days")
    own_chart = icb[icb.index("<svg"):icb.index("</svg>")]
    assert "change-reading" not in icb and "Limits reset" not in own_chart


def test_summary_has_variation_and_assurance_icons_with_text(rendered):
    html = _page(rendered, CORNWALL_ICB)
    summary = html[html.index('id="summary"'):html.index("</section>", html.index('id="summary"'))]
    assert summary.count('data-icon="variation-') >= 1
    assert summary.count('data-icon="assurance-') >= 1
    for icon in [*figures.VARIATION_ICONS.values(), *figures.ASSURANCE_ICONS.values()]:
        if f'data-icon="variation-{icon.code}"' in summary or f'data-icon="assurance-{icon.code}"' in summary:
            assert icon.label in summary


def test_the_comparator_is_not_called_england_when_it_is_not(rendered):
    hwb = _page(rendered, CORNWALL)
    icb = _page(rendered, CORNWALL_ICB)
    # two ICBs' worth of HWBs are not England: a HWB is compared with its ICB, an ICB with
    # the areas in the report
    assert "NHS Cornwall and the Isles of Scilly ICB (per 100,000)</th>" in hwb
    assert "All areas in this report (per 100,000)</th>" in icb
    assert "England (per 100,000)</th>" not in hwb + icb
    assert "England (dotted)" not in hwb + icb


def test_the_comparator_is_england_when_orgs_covers_every_hwb(report_con, tmp_path):
    report_con.executemany("insert into orgs values (?, 'HWB', ?, null)",
                           [(f"E06{i:06d}", f"Area {i}") for i in range(200, 200 + report_data.ENGLAND_HWB_MIN)])
    index = render_reports(report_con, tmp_path / "r", [date(2025, 11, 1)])
    hwb = (index.parent / "2025-11" / f"{CORNWALL}.html").read_text(encoding="utf-8")
    assert "England (per 100,000)</th>" in hwb and "England (dotted)" in hwb


def test_exports_carry_spc_fields_under_disclosure_control(rendered):
    text = (rendered / "2025-11" / "figures.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    assert {"spc_mean", "spc_lower_limit", "spc_upper_limit", "spc_point_type", "spc_rebase_group",
            "spc_variation", "spc_assurance"} <= set(rows[0])
    icb = next(r for r in rows if r["area_code"] == CORNWALL_ICB
               and r["metric_id"] == "emergency_admissions_65plus")
    assert icb["spc_point_type"] and float(icb["spc_upper_limit"]) > float(icb["spc_mean"])
    # the Isles of Scilly's suppressed figures publish nothing of their SPC either
    suppressed = [r for r in rows if r["area_code"] == SCILLY and r["value"] == "*"]
    assert suppressed
    for r in suppressed:
        assert {r[k] for k in ("spc_mean", "spc_lower_limit", "spc_upper_limit", "spc_point_type",
                               "spc_variation", "spc_assurance")} == {""}
    document = json.loads((rendered / "2025-11" / "figures.json").read_text(encoding="utf-8"))
    assert "spc_assurance" in document["figures"][0]


def test_methodology_states_the_settings_the_sql_used(report_con, tmp_path):
    report_con.execute("set variable spc_min_points = 9")
    report_con.execute("set variable spc_fix_after = 15")
    index = render_reports(report_con, tmp_path / "r", [date(2025, 11, 1)])
    page = (index.parent / "2025-11" / f"{CORNWALL}.html").read_text(encoding="utf-8")
    methods = page[page.index('id="method-spc"'):]
    assert "at least 9 final months" in methods and "after its first 15 final months" in methods
    # and the SQL used them: nine months since the change are enough for new limits
    assert "No process limits" not in _section(page, "discharge_delay_days")
