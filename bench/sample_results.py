"""Dump what the sample loads, builds and publishes, to compare two versions of the code.

Speed work must not change results. Run this once with each version's `flows` first on the
path, then compare the folders:

    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before .venv/bin/python bench/sample_results.py /tmp/results-before
    .venv/bin/python bench/sample_results.py /tmp/results-after
    diff -r /tmp/results-before /tmp/results-after      # only the landing path in load_log

The sample (seed 7, 24 months, with faults) covers every kind of file and row the loader
handles. Dumped: metric_values, load_log (with the SHA-256), quarantine, the raw tables (without
file ids), and each file's invalid and missing person-id counts; then every month's reports are
rendered and dumped as `published/<YYYY-MM>/figures.csv|json` (the exports as written) and
`published/<YYYY-MM>/<area>.txt`, each page's outline (`page_outline`): its landmarks and section
ids, headings, table captions, header and row labels, every text the page shows, each chart's
text alternative, and its counts of published and suppressed cells. The outline catches a
change in what a page says, not in how a chart is drawn (SVG coordinates are left out).
"""
from __future__ import annotations

import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

QUERIES = {
    "metric_values": "select * from metric_values order by all",
    "load_log": "select file_name, hex(sha256), dataset, org_code, period, status, rows_in, "
                "rows_loaded, rows_quarantined, reason from load_log order by all",
    "quarantine": "select * from quarantine order by all",
    "raw_apc": "select * exclude (file_id) from raw_apc order by all",
    "raw_reablement": "select * exclude (file_id) from raw_reablement order by all",
    "raw_carehome": "select * exclude (file_id) from raw_carehome order by all",
    "files": "select file_name, invalid_nhs_numbers, missing_person_ids from files order by all",
}
SUPPRESSED = "*"
_LANDMARKS = ("section", "nav", "main", "header", "footer", "table", "details")
_SKIPPED = ("style", "script")
_BLOCKS = ("h1", "h2", "h3", "h4", "caption", "p", "li")


class _PageOutline(HTMLParser):
    """Text lines of a page: landmarks with their ids, headings, paragraphs and list items, each
    table row's cells on one line, and charts by their label (their drawing is left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.depth = 0
        self.skip = 0            # inside <style>, <script> or a chart's drawing
        self.text: list[str] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.cells = {"published": 0, "suppressed": 0}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if self.skip:
            self.skip += tag in ("svg", *_SKIPPED)
        elif tag == "svg":
            self._flush()
            if not a.get("data-icon"):
                self.lines.append("  " * self.depth + f"chart: {a.get('aria-label')}")
            self.skip = 1
        elif tag in _SKIPPED:
            self.skip = 1
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "tr":
            self._flush()
            self.row = []
        elif tag in _LANDMARKS or tag in _BLOCKS:
            self._flush()
            if tag in _LANDMARKS:
                ident = f"#{a['id']}" if a.get("id") else ""
                self.lines.append("  " * self.depth + f"<{tag}{ident}>")
                self.depth += 1

    def handle_endtag(self, tag):
        if self.skip:
            self.skip -= tag in ("svg", *_SKIPPED)
        elif tag in ("td", "th") and self.cell is not None:
            text = " ".join("".join(self.cell).split())
            (self.row if self.row is not None else self.text).append(f"[{text}]")
            if tag == "td" and text:
                self.cells["suppressed" if text == SUPPRESSED else "published"] += 1
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.lines.append("  " * self.depth + "row: " + " ".join(self.row))
            self.row = None
        elif tag in _LANDMARKS:
            self._flush()
            self.depth -= 1
        elif tag in _BLOCKS:
            self._flush(prefix=f"{tag}: ")

    def handle_data(self, data):
        if not self.skip:
            (self.cell if self.cell is not None else self.text).append(data)

    def _flush(self, prefix: str = "") -> None:
        text = re.sub(r"\s+", " ", "".join(self.text)).strip()
        if text:
            self.lines.append("  " * self.depth + prefix + text)
        self.text = []


def page_outline(html: str) -> str:
    parser = _PageOutline()
    parser.feed(html)
    parser._flush()
    counts = parser.cells
    return "\n".join(parser.lines + [f"cells published: {counts['published']}, "
                                     f"suppressed: {counts['suppressed']}"]) + "\n"


def dump_reports(reports: Path, out: Path) -> None:
    """Each month's exports as written and each page's outline, under `out`."""
    for month in sorted(p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")):
        target = out / month.name
        target.mkdir(parents=True, exist_ok=True)
        for export in ("figures.csv", "figures.json"):
            shutil.copyfile(month / export, target / export)
        for page in sorted(month.glob("*.html")):
            text = page.read_text(encoding="utf-8")
            (target / f"{page.stem}.txt").write_text(page_outline(text), encoding="utf-8")
    (out / "index.txt").write_text(page_outline((reports / "index.html").read_text(encoding="utf-8")),
                                   encoding="utf-8")


def dump(out: Path) -> None:
    from flows import pipeline
    from flows.publish.report import render_reports
    from flows.settings import Settings
    from sample.generate import generate_landing

    out.mkdir(parents=True, exist_ok=True)
    landing = out / "landing"
    if not landing.exists():
        generate_landing(landing, seed=7, months=24, faults=True)
    db = out / "joinedup.duckdb"
    db.unlink(missing_ok=True)
    reports = out / "reports"
    shutil.rmtree(reports, ignore_errors=True)
    settings = Settings(landing=landing, db=db, reports=reports, pseudo_key="compare-key",
                        lock_wait=0.0)
    with pipeline.open_writer(settings) as con:
        pipeline.load_step(con, settings)
        pipeline.build_step(con, pipeline.plan_step(con, None), "compare")
        for name, query in QUERIES.items():
            con.execute(f"copy ({query}) to '{out / name}.csv' (header)")
        render_reports(con, reports)
    dump_reports(reports, out / "published")
    shutil.rmtree(reports)
    db.unlink()


if __name__ == "__main__":
    dump(Path(sys.argv[1]))
