"""The structure of a rendered page as text: headings, landmarks, tables and charts.

Golden files hold this outline rather than the whole HTML, so a change of wording in a number or
of styling does not fail them, but a lost section, heading, table column or chart does.
"""
from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

UPDATE_FLAG = "JOINEDUP_UPDATE_GOLDEN"
GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden" / "report"
_CAPTURE = {"h1", "h2", "h3", "h4", "caption", "th"}


class _Outline(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.depth = 0
        self._text: list[str] | None = None
        self._tag = ""
        self._header_row: list[str] | None = None
        self._in_thead = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("section", "nav", "main", "header", "footer"):
            ident = f"#{a['id']}" if a.get("id") else (f"[{a['aria-label']}]" if a.get("aria-label") else "")
            self._emit(f"{tag}{ident}")
            self.depth += 1
        elif tag == "svg" and a.get("data-icon"):
            self._emit(f"icon {a['data-icon']} hidden={a.get('aria-hidden')}")   # its label is text
        elif tag == "svg":
            self._emit(f"chart role={a.get('role')} labelled={'aria-label' in a}")
        elif tag == "thead":
            self._in_thead, self._header_row = True, []
        elif tag in _CAPTURE and (tag != "th" or self._in_thead):
            self._text, self._tag = [], tag

    def handle_endtag(self, tag):
        if tag in ("section", "nav", "main", "header", "footer"):
            self.depth -= 1
        elif tag == "thead":
            self._emit("  columns: " + " | ".join(self._header_row or []))
            self._in_thead = False
        elif tag == self._tag and self._text is not None:
            text = re.sub(r"\s+", " ", "".join(self._text)).strip()
            if tag == "th":
                self._header_row.append(text)
            else:
                self._emit(f"{'table: ' if tag == 'caption' else tag + ': '}{text}")
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def _emit(self, line: str) -> None:
        self.lines.append("  " * self.depth + line)


def outline(html: str) -> str:
    parser = _Outline()
    parser.feed(html)
    return "\n".join(parser.lines) + "\n"


def assert_matches_golden(name: str, html: str) -> None:
    """Compare the page's outline with tests/golden/report/<name>.txt; rewrite it only when
    JOINEDUP_UPDATE_GOLDEN=1."""
    actual = outline(html)
    path = GOLDEN_DIR / f"{name}.txt"
    if os.environ.get(UPDATE_FLAG) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; create it with {UPDATE_FLAG}=1"
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (f"outline of {name} changed; if intended, regenerate with "
                                f"{UPDATE_FLAG}=1 and review the diff")
