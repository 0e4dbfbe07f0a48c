"""Report pages are not drawn or written again when nothing they show has changed.

A page's digest is the SHA-256 of everything its HTML is made from:

- its context (every figure, label, chart series and data-quality row the page shows),
  pickled without memo, so equal values give equal bytes however objects are shared (dicts
  keep the order the report code builds them in, which depends only on the data);
- the source of every template and of the modules that turn the database's rows into HTML
  and SVG (RENDERING_MODULES), so a changed template, filter or chart style changes every
  digest;
- the code lists in `sql/reference/` (labels and groupings the pages quote).

Each month has a manifest, `reports/.page-digests/<YYYY-MM>.json` (file name -> digest),
written after its pages. On the next run a page whose digest is in the manifest and whose
file is still there is skipped: its charts are not drawn and its file is not touched (its
modification time says when its content last changed). A context that cannot be pickled
has no digest: that page is always rendered. A value whose pickle differs between runs (a
set, ordered by hash) only costs a re-render, never a stale page.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
from functools import lru_cache
from pathlib import Path

import flows

MANIFESTS = ".page-digests"   # reports/.page-digests/<YYYY-MM>.json: page name -> digest
DATA_KEY = ".data"           # the manifest's entry for the month's report data
RENDERING_MODULES = tuple(f"publish/{name}.py" for name in (
    "report", "report_data", "figures", "wording", "pages", "charts", "exports", "sdc"))


@lru_cache(maxsize=1)
def inputs_digest() -> str:
    """The templates, the rendering code and the code lists, hashed once per process."""
    digest = hashlib.sha256()
    package = Path(flows.__file__).parent
    sources = sorted(Path(flows.TEMPLATES_DIR).rglob("*.j2"))
    sources += [package / name for name in RENDERING_MODULES]
    sources += sorted((Path(flows.SQL_DIR) / "reference").glob("*.csv"))
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def page_digest(template: str, context: dict) -> str | None:
    """The digest of one page, or None when its context cannot be written out."""
    digest = hashlib.sha256(f"{inputs_digest()}\0{template}\0".encode())
    pickler = pickle.Pickler(_Hashing(digest), protocol=5)
    pickler.fast = True     # no memo: the same values give the same bytes, however shared
    try:
        pickler.dump(context)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        return None
    return digest.hexdigest()


class _Hashing:
    """A file-like object that hashes what is written to it instead of keeping it."""

    def __init__(self, digest) -> None:
        self.digest = digest

    def write(self, data) -> int:
        self.digest.update(data)
        return len(data)


_last_data: tuple[object, str | None] | None = None


def _stable(value):
    """Dicts and lists in an order that does not depend on the order rows came back in."""
    if isinstance(value, dict):
        # keys are unique, so their order alone is enough: no repr of every value
        return [(k, _stable(value[k])) for k in sorted(value, key=repr)]
    if isinstance(value, list):
        return sorted((_stable(v) for v in value), key=repr)
    return value


def data_digest(data) -> str | None:
    """The digest of everything a month's pages can be made from: the report data read from
    the database (report.ReportData, without its memo of computed figures) and the inputs
    digest. Computed once per ReportData."""
    global _last_data
    if _last_data is not None and _last_data[0] is data:
        return _last_data[1]
    digest = hashlib.sha256(inputs_digest().encode())
    pickler = pickle.Pickler(_Hashing(digest), protocol=5)
    pickler.fast = True
    try:
        pickler.dump([(f.name, _stable(getattr(data, f.name))) for f in dataclasses.fields(data)
                      if not f.name.startswith("_")])
        result = digest.hexdigest()
    except (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError):
        result = None
    _last_data = (data, result)
    return result


class PageCache:
    """The digests of one month folder's pages: which pages must be rendered, and recording
    those that were."""

    def __init__(self, folder: Path, data=None) -> None:
        self.folder = Path(folder)
        self.recorded = self._read()
        self.digests: dict[str, str | None] = {}
        self.data = data_digest(data) if data is not None else None

    def month_unchanged(self) -> bool:
        """Every page of the month was written from the same report data, templates and code
        as now, and is still there: nothing of the month needs building (no page contexts,
        no disclosure checks, no charts). Otherwise each page is judged on its own."""
        pages = [name for name in self.recorded if name != DATA_KEY]
        return (self.data is not None and self.recorded.get(DATA_KEY) == self.data and bool(pages)
                and all((self.folder / name).exists() for name in pages))

    @property
    def manifest(self) -> Path:
        """Beside the month folders, not in them: a month folder holds what is published."""
        return self.folder.parent / MANIFESTS / f"{self.folder.name}.json"

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def changed(self, path: Path, template: str, context: dict) -> bool:
        """The page must be rendered: it is new, its inputs changed, or its file is gone."""
        digest = page_digest(template, context)
        self.digests[path.name] = digest
        return digest is None or self.recorded.get(path.name) != digest or not path.exists()

    def save(self) -> None:
        """Record the digests of the pages now written (atomically, after the pages)."""
        current = {**self.recorded, **{n: d for n, d in self.digests.items() if d}}
        for name in [n for n, d in self.digests.items() if d is None]:
            current.pop(name, None)
        if self.data and all(self.digests.values()):
            current[DATA_KEY] = self.data
        else:
            current.pop(DATA_KEY, None)
        if current == self.recorded:
            return
        self.manifest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest.with_name(f".{self.manifest.name}.tmp")
        tmp.write_text(json.dumps(current, indent=0, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.manifest)
        self.recorded = current
