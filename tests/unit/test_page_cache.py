"""A report page whose inputs (its figures, the templates and rendering code, the code lists)
are unchanged since it was written is neither drawn nor written again (flows/publish/page_cache.py)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from flows import schema
from flows.db import connect
from flows.errors import DisclosureError
from flows.ingest.loader import load_landing
from flows.models.runner import (
    build_months,
    load_project,
    loaded_months,
    plan_months,
    write_catalog,
)
from flows.publish import charts, page_cache, report, report_data
from sample.generate import AREAS, ICB_CODE, generate_landing


@pytest.fixture(scope="module")
def built_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    generate_landing(folder / "landing", seed=5, months=3, formats=False)
    con = connect(folder / "j.duckdb")
    load_landing(con, folder / "landing", pseudo_key="test-key")
    schema.ensure(con)
    project = load_project()
    write_catalog(con, project)
    build_months(con, project, plan_months(con, project, loaded_months(con)), run_id="t")
    con.close()
    return folder / "j.duckdb"


@pytest.fixture
def con(built_db, tmp_path):
    copy = tmp_path / "j.duckdb"
    copy.write_bytes(built_db.read_bytes())
    con = connect(copy)
    yield con
    con.close()


@pytest.fixture
def charts_drawn(monkeypatch):
    """The number of charts drawn by each render_reports call."""
    drawn: list[int] = []
    original = charts.render_charts

    def counting(specs):
        drawn.append(len(specs))
        return original(specs)

    monkeypatch.setattr(charts, "render_charts", counting)
    return drawn


def _pages(reports, month: date) -> dict[str, int]:
    """Page name -> modification time (ns) of one month's pages."""
    return {p.name: p.stat().st_mtime_ns for p in (reports / report.month_code(month)).glob("*.html")}


def _last_month(con) -> date:
    return con.execute("select max(period_month) from metric_cells").fetchone()[0]


def test_unchanged_pages_are_not_drawn_or_written_again(con, tmp_path, charts_drawn):
    reports, month = tmp_path / "reports", _last_month(con)
    report.render_reports(con, reports, [month])
    first = _pages(reports, month)
    assert len(first) == len(AREAS) + 1 and charts_drawn[-1] > 0
    drawn_before = len(charts_drawn)
    others = [reports / "index.html", *(reports / report.month_code(month)).glob("figures.*")]
    written = {p: p.stat().st_mtime_ns for p in others}
    report.render_reports(con, reports, [month])
    assert sum(charts_drawn[drawn_before:]) == 0
    assert _pages(reports, month) == first
    assert len(written) == 3 and {p: p.stat().st_mtime_ns for p in others} == written


def test_a_changed_figure_redraws_only_the_pages_that_show_it(con, tmp_path, charts_drawn):
    reports, month = tmp_path / "reports", _last_month(con)
    report.render_reports(con, reports, [month])
    first = _pages(reports, month)
    changed, unchanged = AREAS[0].code, AREAS[1].code
    # a plan is one area's alone (an HWB's numerator would change its ICB's and England's too)
    con.execute("update raw_plan set plan_value = plan_value * 1.5 "
                "where period = ? and area_code = ? and metric_id = 'emergency_admissions'",
                [month, changed])
    report.render_reports(con, reports, [month])
    after = _pages(reports, month)
    assert after[f"{changed}.html"] != first[f"{changed}.html"]
    assert after[f"{ICB_CODE}.html"] != first[f"{ICB_CODE}.html"]     # its HWBs side by side
    assert after[f"{unchanged}.html"] == first[f"{unchanged}.html"]
    assert 0 < charts_drawn[-1] < charts_drawn[0]


def test_changed_templates_or_code_lists_or_a_missing_file_render_again(con, tmp_path, charts_drawn,
                                                                       monkeypatch):
    reports, month = tmp_path / "reports", _last_month(con)
    report.render_reports(con, reports, [month])
    first = _pages(reports, month)
    (reports / report.month_code(month) / f"{AREAS[1].code}.html").unlink()
    report.render_reports(con, reports, [month])
    assert set(_pages(reports, month)) == set(first)
    assert _pages(reports, month)[f"{AREAS[0].code}.html"] == first[f"{AREAS[0].code}.html"]
    # the templates, rendering code and code lists are one digest: any change renders every page
    monkeypatch.setattr(page_cache, "inputs_digest", lambda: "another template")
    report.render_reports(con, reports, [month])
    assert all(_pages(reports, month)[name] != mtime for name, mtime in first.items())


def test_the_inputs_digest_covers_templates_rendering_code_and_code_lists(tmp_path, monkeypatch):
    import flows

    digest = page_cache.inputs_digest()
    page_cache.inputs_digest.cache_clear()
    templates = tmp_path / "templates"
    templates.mkdir()
    for path in flows.TEMPLATES_DIR.glob("*.j2"):
        (templates / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(flows, "TEMPLATES_DIR", templates)
    try:
        assert page_cache.inputs_digest() == digest
        page_cache.inputs_digest.cache_clear()
        (templates / "_footer.html.j2").write_text("changed")
        assert page_cache.inputs_digest() != digest
    finally:
        page_cache.inputs_digest.cache_clear()


def test_a_context_that_cannot_be_pickled_is_always_rendered(tmp_path):
    cache = page_cache.PageCache(tmp_path)
    page = tmp_path / "E1.html"
    page.write_text("x")
    assert cache.changed(page, "hwb_page.html.j2", {"f": lambda: 1})
    assert page_cache.page_digest("hwb_page.html.j2", {"a": 1.0}) == \
        page_cache.page_digest("hwb_page.html.j2", {"a": 1.0})
    assert page_cache.page_digest("hwb_page.html.j2", {"a": 1.0}) != \
        page_cache.page_digest("hwb_page.html.j2", {"a": 1.0000001})


def test_a_month_whose_report_data_is_unchanged_builds_no_page_at_all(con, tmp_path, monkeypatch):
    reports, month = tmp_path / "reports", _last_month(con)
    report.render_reports(con, reports, [month])
    first = _pages(reports, month)
    built = []
    original = report.month_pages
    monkeypatch.setattr(report, "month_pages", lambda *a: built.append(a) or original(*a))
    report.render_reports(con, reports, [month])
    assert built == [] and _pages(reports, month) == first
    # a change anywhere in the data: each page is judged on its own again
    # a plan is one area's alone (an HWB's numerator would change its ICB's and England's too)
    con.execute("update raw_plan set plan_value = plan_value * 1.5 "
                "where period = ? and area_code = ? and metric_id = 'emergency_admissions'",
                [month, AREAS[1].code])
    report.render_reports(con, reports, [month])
    assert len(built) == 1
    assert _pages(reports, month)[f"{AREAS[0].code}.html"] == first[f"{AREAS[0].code}.html"]
    assert _pages(reports, month)[f"{AREAS[1].code}.html"] != first[f"{AREAS[1].code}.html"]


ROOT = str(Path(__file__).resolve().parents[2])
MONTH_KEY_SCRIPT = """
import sys
from flows.db import connect
from flows.errors import DisclosureError
from flows.publish.page_cache import month_key
from flows.publish.report_data import inputs_fingerprint
print(month_key(inputs_fingerprint(connect(sys.argv[1], read_only=True))))
"""


def test_the_month_key_is_the_same_in_every_process(built_db):
    """A scheduled run is a new process: what decides that a month is unchanged must not
    depend on Python's hash order (PYTHONHASHSEED), or nothing-new runs would render again."""
    keys = {subprocess.run([sys.executable, "-c", MONTH_KEY_SCRIPT, str(built_db)], check=True,
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT}).stdout
            for seed in ("1", "2")}
    assert len(keys) == 1 and len(keys.pop().strip()) == 64


def test_the_fingerprint_follows_the_figures_the_files_and_the_catalogue(con):
    before = report_data.inputs_fingerprint(con)
    assert report_data.inputs_fingerprint(con) == before
    changes = [
        "update metric_cells set numerator = numerator + 1 where area_type = 'hwb' "
        "and period_month = (select min(period_month) from metric_cells)",
        "update files set sha256 = sha256 || '\\x00'::blob where file_id = (select min(file_id) from files)",
        "update metric_catalog set title = title || '.' where metric_id = 'emergency_admissions'",
    ]
    for statement in changes:
        con.execute(statement)
        after = report_data.inputs_fingerprint(con)
        assert after != before, statement
        before = after


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def two_workers(monkeypatch):
    """The sample's few pages split across two forked processes, as a national month's are."""
    monkeypatch.setattr(report, "MIN_PAGES_PER_WORKER", 1)
    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)


def _rendered_by_one_and_by_two(con, folder: Path, monkeypatch, months: list[date]):
    """The months rendered in one process into folder/one and with two page processes into
    folder/two: (each pool's size as it was made, the files of one, the files of two)."""
    report.render_reports(con, folder / "one", months)
    with monkeypatch.context() as patched:
        patched.setattr(report, "MIN_PAGES_PER_WORKER", 1)
        patched.setattr(report.os, "cpu_count", lambda: 2)
        pools = []
        original = report._Workers.__init__
        patched.setattr(report._Workers, "__init__",
                        lambda self, *a: pools.append(a[-1]) or original(self, *a))
        report.render_reports(con, folder / "two", months)
    return pools, _files(folder / "one"), _files(folder / "two")


def _months(con) -> list[date]:
    return [r[0] for r in con.execute("select distinct period_month from metric_cells order by 1").fetchall()]


def test_a_month_rendered_by_two_processes_is_the_same_as_by_one(con, tmp_path, monkeypatch):
    pools, one, two = _rendered_by_one_and_by_two(con, tmp_path, monkeypatch, [_last_month(con)])
    assert pools == [2]
    assert len(one) > len(AREAS) and one == two


def test_few_pages_are_rendered_in_one_process():
    assert report._worker_count(19) == 1
    assert report._worker_count(195) == min(2, os.cpu_count() or 1)


def _refusing(monkeypatch, codes: set[str]):
    """sdc refuses the pages of `codes` (a page, by its path; the exports pass)."""
    original = report.sdc.check_publishable

    def check(obj, *, where, **kwargs):
        if Path(where).stem in codes:
            raise DisclosureError(f"refusing to publish {where}: a small count")
        return original(obj, where=where, **kwargs)

    monkeypatch.setattr(report.sdc, "check_publishable", check)


@pytest.mark.parametrize("refused", [1, 2])
def test_a_page_refused_in_a_worker_fails_the_run_as_in_one_process(con, tmp_path, monkeypatch,
                                                                     two_workers, refused):
    """The first refused page in publishing order is the error, whichever worker held it, and
    nothing of the month is written."""
    month = _last_month(con)
    pages = report.month_pages(report.load_report_data(con, month, month), month, tmp_path)
    _refusing(monkeypatch, {p.path.stem for p in pages[1:1 + refused]})
    errors = []
    for workers in (1, 2):
        monkeypatch.setattr(report.os, "cpu_count", lambda workers=workers: workers)
        with pytest.raises(DisclosureError) as raised:
            report.render_reports(con, tmp_path / str(workers), [month])
        errors.append(str(raised.value).replace(str(tmp_path / str(workers)), "<reports>"))
        assert not list((tmp_path / str(workers)).glob("*/*.html"))     # no page; the index may list no month
    assert errors[0] == errors[1] and pages[1].path.stem in errors[0]


def test_a_refused_export_fails_a_two_process_run_and_writes_no_page(con, tmp_path, monkeypatch,
                                                                      two_workers):
    month = _last_month(con)
    _refusing(monkeypatch, {"figures"})
    with pytest.raises(DisclosureError, match="figures.csv"):
        report.render_reports(con, tmp_path / "reports", [month])
    assert not list((tmp_path / "reports").glob("*/*.html"))


def test_a_month_that_cannot_be_rendered_does_not_stop_the_others(con, tmp_path, monkeypatch):
    """Every other month and the index are written; the run still fails, naming the month's
    error, and the refused month has no page."""
    months = _months(con)
    assert len(months) >= 2
    bad = months[0]
    original = report.render_month

    def render(env, data, month, reports_dir, cache, workers=None):
        if month == bad:
            raise RuntimeError(f"cannot draw {report.month_code(month)}")
        return original(env, data, month, reports_dir, cache, workers)

    monkeypatch.setattr(report, "render_month", render)
    reports = tmp_path / "reports"
    with pytest.raises(RuntimeError, match=f"cannot draw {report.month_code(bad)}"):
        report.render_reports(con, reports, months)
    assert not (reports / report.month_code(bad)).exists()
    for month in months[1:]:
        assert _pages(reports, month), f"{month} was not rendered"
    index = (reports / "index.html").read_text()
    assert report.month_code(months[-1]) in index and report.month_code(bad) not in index


def test_every_month_rendered_by_the_run_s_two_workers_is_the_same_as_by_one(con, tmp_path,
                                                                           monkeypatch):
    """The workers live for the whole run, keeping one month's figures for the next: what
    they write for every month is what one process writes."""
    months = _months(con)
    pools, one, two = _rendered_by_one_and_by_two(con, tmp_path, monkeypatch, months)
    assert pools == [2], "one pool of two workers for the whole run"
    assert len(months) >= 2 and sum(name.endswith(".html") for name in one) > len(months) * len(AREAS)
    assert one == two


def test_a_page_worker_that_dies_fails_its_month_and_the_others_render_here(con, tmp_path,
                                                                          monkeypatch, two_workers):
    months = _months(con)
    parent, original = os.getpid(), report._write_pages

    def dying(job, contexts):
        if os.getpid() != parent and job.month == months[0]:
            os._exit(3)         # a worker killed (out of memory, a crash) while writing
        return original(job, contexts)

    monkeypatch.setattr(report, "_write_pages", dying)
    reports = tmp_path / "reports"
    with pytest.raises(RuntimeError, match="worker stopped"):
        report.render_reports(con, reports, months)
    for month in months[1:]:
        assert len(_pages(reports, month)) == len(AREAS) + 1, f"{month} was not rendered"


def test_a_page_digest_names_a_metric_by_id_and_changes_with_the_sql(monkeypatch):
    """A metric's title, unit and definition come from its SQL file's header: the digest writes
    the metric by its id and covers the SQL instead, so an edited header still redraws."""
    from flows.publish.report_data import Metric

    metric = Metric("m1", "Title", "percent", False, "n", "d", None, "definition one", None,
                    None, "sql/metrics/m1.sql", 1)
    context = {"metric": metric, "value": 12.5}
    before = page_cache.page_digest("hwb_page.html.j2", context)
    renamed = dataclasses.replace(metric, definition="definition two")
    assert page_cache.page_digest("hwb_page.html.j2", {**context, "metric": renamed}) == before
    assert page_cache.page_digest("hwb_page.html.j2", {**context, "value": 12.6}) != before
    monkeypatch.setattr(page_cache, "sql_digest", lambda: "an edited metric header")
    assert page_cache.page_digest("hwb_page.html.j2", context) != before


@pytest.mark.parametrize("share", [0, 1])
def test_a_page_that_cannot_be_built_fails_its_month_in_either_process(con, tmp_path, monkeypatch,
                                                                      two_workers, share):
    """Share 0 is the parent's, share 1 the forked worker's: either way the month writes
    nothing, the workers stay in step, and the next months render."""
    months = _months(con)
    pages = report.month_pages(report.load_report_data(con, months[0], months[0]), months[0], tmp_path)
    broken = pages[share]
    original = report._CONTEXTS[broken.template]

    def building(data, month, area):
        if month == months[0] and area.code == broken.area.code:
            raise ValueError(f"cannot build {area.code}")
        return original(data, month, area)

    monkeypatch.setitem(report._CONTEXTS, broken.template, building)
    reports = tmp_path / "reports"
    with pytest.raises(ValueError, match=f"cannot build {broken.area.code}"):
        report.render_reports(con, reports, months)
    assert not _pages(reports, months[0])
    for month in months[1:]:
        assert len(_pages(reports, month)) == len(AREAS) + 1, f"{month} was not rendered"
