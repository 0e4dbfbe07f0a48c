"""The SPC chart written as SVG (flows/publish/charts.py): what it draws, read back from the SVG."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from flows.publish.charts import (
    AREA_COLOUR,
    ENGLAND_COLOUR,
    PLAN_COLOUR,
    POINT_COLOURS,
    SPC_LINE_COLOUR,
    ChartSpec,
    render_charts,
    render_svg,
    y_ticks,
)

SVG = "{http://www.w3.org/2000/svg}"
MONTHS = tuple(f"M{i:02d}" for i in range(24))


def _spec(**changes) -> ChartSpec:
    values = tuple(None if i == 5 else 100.0 + i for i in range(24))
    types = tuple(None if v is None or i < 3 else
                  "special_cause_concern" if i > 20 else "common_cause" for i, v in enumerate(values))
    spec = dict(key="c-E06000052-emergency_admissions", label="Chart of admissions <for> Cornwall",
                area_name="Cornwall", y_label="per 100,000", months=MONTHS, values=values,
                plan=(110.0,) * 24, england=tuple(90.0 + i for i in range(24)),
                provisional=tuple(i == 23 for i in range(24)), point_types=types,
                mean=(None,) * 3 + (112.0,) * 9 + (130.0,) * 12,
                lpl=(None,) * 3 + (-4.0,) * 9 + (120.0,) * 12,
                upl=(None,) * 3 + (150.0,) * 9 + (160.0,) * 12,
                rebases=((12, "Discharge to assess service"),))
    return ChartSpec(**{**spec, **changes})


def _tree(spec: ChartSpec) -> ET.Element:
    return ET.fromstring(render_svg(spec))      # well-formed XML, or this raises


def _circles(root: ET.Element, **attrs) -> list[ET.Element]:
    return [c for c in root.iter(f"{SVG}circle") if all(c.get(k) == v for k, v in attrs.items())]


def test_the_chart_is_an_image_named_by_its_text_alternative():
    svg = render_svg(_spec())
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("focusable") == "false"
    assert root.get("aria-label") == "Chart of admissions <for> Cornwall"
    assert root.find(f"{SVG}title").text == "Chart of admissions <for> Cornwall"
    assert "&lt;for&gt;" in svg and 'class="chart-svg"' in svg and "width=" not in svg.split(">")[0]


def test_points_are_coloured_by_their_spc_type_and_hollow_without_one():
    root = _tree(_spec())
    concern = _circles(root, fill=POINT_COLOURS["special_cause_concern"])
    common = _circles(root, fill=POINT_COLOURS["common_cause"])
    hollow = _circles(root, fill="#FFFFFF", stroke=POINT_COLOURS["common_cause"])
    assert (len(concern), len(common), len(hollow)) == (3, 17, 3)    # month 5 has no value
    rings = _circles(root, stroke=AREA_COLOUR)                       # the provisional month
    assert len(rings) == 1 and rings[0].get("cx") == concern[-1].get("cx")


def test_plan_comparator_mean_and_limits_are_drawn_as_their_lines():
    root = _tree(_spec())
    paths = [p.get("stroke") for p in root.iter(f"{SVG}path")]
    assert PLAN_COLOUR in paths and ENGLAND_COLOUR in paths
    spc = [p for p in root.iter(f"{SVG}path") if p.get("stroke") == SPC_LINE_COLOUR]
    # mean (solid), lower and upper limits (dashed), the rebase (dotted)
    assert len(spc) == 4 and sum(p.get("stroke-dasharray") is None for p in spc) == 1
    mean = next(p for p in spc if p.get("stroke-dasharray") is None).get("d")
    assert mean.count("M") == 1 and mean.count("L") == 2 * 20 + 1   # one run of 21 steps
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Discharge to assess service" in texts and "per 100,000" in texts


def test_a_missing_month_breaks_the_line_and_limits_below_zero_are_clipped():
    root = _tree(_spec())
    link = next(p for p in root.iter(f"{SVG}path") if p.get("stroke") == "#AEB7BD"
                and p.get("stroke-width") == "1.2")
    assert link.get("d").count("M") == 2
    clip = root.find(f"{SVG}defs/{SVG}clipPath")
    assert clip.get("id") == "c-E06000052-emergency_admissions-plot"
    group = root.find(f"{SVG}g")
    assert group.get("clip-path") == "url(#c-E06000052-emergency_admissions-plot)"


def test_a_plain_trend_is_the_blue_line_with_its_points():
    root = _tree(_spec(point_types=(), mean=(), lpl=(), upl=(), rebases=()))
    line = [p for p in root.iter(f"{SVG}path") if p.get("stroke") == AREA_COLOUR]
    assert len(line) == 1 and len(_circles(root, fill=AREA_COLOUR)) == 23
    assert not _circles(root, fill=POINT_COLOURS["common_cause"])


def test_the_y_axis_starts_at_zero_and_covers_every_line():
    assert y_ticks(163.0) == [0.0, 50.0, 100.0, 150.0, 200.0]
    assert y_ticks(0.0) == [0.0, 1.0]
    labels = [t.text for t in _tree(_spec()).iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert labels == ["0", "50", "100", "150", "200"]


def test_the_renderer_writes_each_chart_once_by_key():
    a, b = _spec(), _spec(key="c-other")
    svgs = render_charts([a, b, a])
    assert set(svgs) == {a.key, b.key} and svgs[a.key] == render_svg(a)
