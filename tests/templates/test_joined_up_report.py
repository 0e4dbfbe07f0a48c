"""The "Joined-up care" section and the linkage rates of the report, rendered from a database
built end to end from hand-made extracts (conftest's two HWBs in one ICB).

HWB_A: 30 residents aged 80 discharged on 10 October 2025; its council sends reablement rows
for 20 of them (same PSEUDO_ID, same day) and 3 under ids of its own, and 5 care home rows.
HWB_B's council sends 10 reablement rows under ids of its own: nothing links.
"""
from __future__ import annotations

import re
from datetime import date

import pytest

from flows import schema
from flows.db import connect
from flows.publish.report import render_reports
from tests.sql.conftest import (
    APC_HEADER,
    CAREHOME_HEADER,
    HWB_A,
    HWB_B,
    ICB,
    REABLEMENT_HEADER,
    write_csv,
    write_reference,
)
from tests.sql.test_linked_metrics import LINKED, build, carehome, reablement, spell


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("joined-up")
    landing = write_reference(tmp / "landing")
    write_csv(landing / "apc_R0A_2025-10.csv", APC_HEADER,
              *(spell("R0A", f"S{i}", f"P{i}", 80, HWB_A, "2025-10-01", discharged="2025-10-10")
                for i in range(1, 31)))
    write_csv(landing / f"reablement_{HWB_A}_2025-10.csv", REABLEMENT_HEADER,
              *(reablement(f"C{i}", f"P{i}", "2025-10-10") for i in range(1, 21)),
              *(reablement(f"L{i}", f"A-OWN-{i}", "2025-10-10") for i in range(1, 4)))
    write_csv(landing / f"carehome_{HWB_A}_2025-10.csv", CAREHOME_HEADER,
              *(carehome(f"C{i}", f"P{i}", "2025-10-20") for i in range(1, 6)))
    write_csv(landing / f"reablement_{HWB_B}_2025-10.csv", REABLEMENT_HEADER,
              *(reablement(f"K{i}", f"B-OWN-{i}", "2025-10-12", la=HWB_B) for i in range(1, 11)))
    con = connect(tmp / "db.duckdb")
    schema.ensure(con)
    build(con, landing)
    render_reports(con, tmp / "reports", [date(2025, 10, 1)])
    con.close()
    return tmp / "reports" / "2025-10"


def section(html: str, ident: str) -> str:
    start = re.search(rf'<section[^>]* id="{ident}"', html).start()
    return html[start:html.index("</section>", start)]


def row(html: str, *cells: str) -> bool:
    """Whether a table row holds these cells' texts in this order."""
    pattern = r"<tr>\s*" + r"\s*".join(rf"<t[hd][^>]*>[^<]*{re.escape(c)}.*?</t[hd]>" for c in cells)
    return re.search(pattern, html, re.S) is not None


def test_linked_metrics_are_in_the_joined_up_section_only(reports):
    html = (reports / f"{HWB_A}.html").read_text(encoding="utf-8")
    joined_up = html.index('<section id="joined-up"')
    for metric_id in LINKED:
        anchor = f'id="metric-{metric_id}"'
        assert html.count(anchor) == 1, metric_id                # one section, not two
        assert html.index(anchor) > joined_up, metric_id         # after the section's heading
        assert f'href="#metric-{metric_id}"' in html             # the summary links to it
    assert html.index('<section id="data-quality"') > joined_up
    assert "Joined-up care" in section(html, "joined-up")
    contents = html[html.index('<nav class="contents'):html.index("</nav>", html.index('<nav class="contents'))]
    assert contents.index('href="#joined-up"') < contents.index('href="#data-quality"')


def test_each_councils_linkage_rate_is_beside_the_measures(reports):
    a = section((reports / f"{HWB_A}.html").read_text(encoding="utf-8"), "joined-up")
    # 20 of 23 reablement rows with a person id link: published from rounded counts, 20 / 25
    assert row(a, "Manchester", "reablement", "25", "20", "80.0%", "80.0%")
    # 5 care home rows, all linked: counts 1-7 are suppressed, and so is the rate
    assert row(a, "Manchester", "care home admissions", "*", "*", "*", "*")
    icb = section((reports / f"{ICB}.html").read_text(encoding="utf-8"), "joined-up")
    assert row(icb, "Manchester", "reablement", "25", "20", "80.0%")
    assert row(icb, "Salford", "reablement", "10", "0", "0.0%", "0.0%")   # ids of its own


def test_the_joined_up_measures_are_published_from_rounded_counts(reports):
    html = (reports / f"{HWB_A}.html").read_text(encoding="utf-8")
    measure = section(html, "metric-reablement_after_discharge_65plus")
    assert row(measure, "Oct 2025", "20", "30", "66.7")     # 20 of 30 discharges followed


def test_data_quality_gives_the_linkage_rate_by_council_and_month(reports):
    quality = section((reports / f"{ICB}.html").read_text(encoding="utf-8"), "data-quality")
    assert "Linkage rate by council and month" in quality
    # A: 25 of 28 reablement and care home rows link, published as 25 of 30
    assert row(quality, "Oct 2025", "83.3%", "0.0%")
