"""Report pages are not drawn or written again when nothing they show has changed.

A page's digest is the SHA-256 of everything its HTML is made from:

- its context (every figure, label, chart series and data-quality row the page shows),
  pickled (dicts keep the order the report code builds them in, which depends only on the
  data). The pickle keeps its memo: a metric's definition or a figure shown in a dozen places
  is written once and then referred to, a third of the bytes and time of writing each copy.
  Which objects a context shares comes from the report code's memos (unbounded, keyed by the
  data), so it is the same in every run and process; and a pickle decodes to exactly one
  value, so a changed figure always changes the digest;
- the source of every template and of the modules that turn the database's rows into HTML
  and SVG (all of joinedup's code), so a changed template, filter or chart style changes every
  digest;
- the code lists in `sql/reference/` (labels and groupings the pages quote);
- the project's SQL: a metric in a context is written by its id alone, since everything else
  about it (title, unit, definition) comes from its SQL file's header. A page names a dozen
  metrics many times over, so this halves the time a digest takes.

Each month has a manifest, `reports/.page-digests/<YYYY-MM>.json` (file name -> digest),
written after its pages. On the next run a page whose digest is in the manifest and whose
file is still there is skipped: its charts are not drawn and its file is not touched (its
modification time says when its content last changed). A context that cannot be pickled
has no digest: that page is always rendered. A value whose pickle differs between runs (a
set, ordered by hash) only costs a re-render, never a stale page.

Before any of that, a whole month is skipped without reading its data when the manifest's
`.data` entry equals `month_key`: the digest of the database's fingerprint (everything a page
can show, digested by DuckDB: report_data.inputs_fingerprint), the project's SQL, and the
templates, code and code lists. It is written only when every page of the month had a digest,
and it is the same in every process (no Python hash order in it), so a scheduled run with
nothing new reads a few aggregates and renders nothing.
"""
from __future__ import annotations

import copyreg
import hashlib
import json
import os
import pickle
from functools import lru_cache
from pathlib import Path

import flows
from flows.publish.report_data import Metric

MANIFESTS = ".page-digests"   # reports/.page-digests/<YYYY-MM>.json: page name -> digest
DATA_KEY = ".data"           # the manifest's entry for the month's inputs (month_key)


@lru_cache(maxsize=1)
def inputs_digest() -> str:
    """The templates, the rendering code and the code lists, hashed once per process."""
    digest = hashlib.sha256()
    package = Path(flows.__file__).parent
    sources = sorted(Path(flows.TEMPLATES_DIR).rglob("*.j2"))
    sources += sorted(package.rglob("*.py"))   # all of joinedup's code: no list to keep up to date
    sources += sorted((Path(flows.SQL_DIR) / "reference").glob("*.csv"))
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# How a context's objects are written for a digest: a Metric by its id (see above)
_DIGEST_REDUCERS = {**copyreg.dispatch_table, Metric: lambda metric: (Metric, (metric.metric_id,))}


def page_digest(template: str, context: dict) -> str | None:
    """The digest of one page, or None when its context cannot be written out."""
    digest = hashlib.sha256(f"{inputs_digest()}\0{sql_digest()}\0{template}\0".encode())
    pickler = pickle.Pickler(_Hashing(digest), protocol=5)
    pickler.dispatch_table = _DIGEST_REDUCERS
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


@lru_cache(maxsize=1)
def sql_digest() -> str:
    """The project's SQL (models, marts, audits), hashed once per process: a changed view can
    change what a page shows without a changed row in the tables the fingerprint reads."""
    digest = hashlib.sha256()
    for path in sorted(Path(flows.SQL_DIR).rglob("*.sql")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def month_key(fingerprint: str) -> str:
    """The digest of everything a month's pages are made from: the database's fingerprint
    (report_data.inputs_fingerprint), the SQL, and the templates, code and code lists."""
    return hashlib.sha256(f"{inputs_digest()}\0{sql_digest()}\0{fingerprint}".encode()).hexdigest()


class PageCache:
    """The digests of one month folder's pages: which pages must be rendered, and recording
    those that were."""

    def __init__(self, folder: Path, fingerprint: str | None = None) -> None:
        self.folder = Path(folder)
        self.recorded = self._read()
        self.digests: dict[str, str | None] = {}
        self.data = month_key(fingerprint) if fingerprint is not None else None

    def month_unchanged(self) -> bool:
        """Every page of the month was written from the same database fingerprint, SQL,
        templates and code as now, and is still there: nothing of the month needs reading or
        building (no page contexts, no disclosure checks, no charts). Otherwise each page is
        judged on its own."""
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
