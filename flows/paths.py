"""Where joinedup may write: every output file is named from a validated code and must resolve
inside the reports folder.

An organisation code comes from a sender's `orgs` file. The loader quarantines a row whose
ORG_CODE or PARENT_CODE is not a code (rule `bad_org_code`, flows/ingest/rules.py), and this module
checks again at the moment of writing, so that a bad code that reached the database anyway
(an older database, a hand edit) still cannot name a file outside the reports folder.
"""
from __future__ import annotations

import re
from pathlib import Path

from flows.errors import UnsafeOutputPath

# ODS codes (providers RXH, NT401; ICBs QOP) and ONS codes (E06000043) are letters and digits;
# the longest in use is nine characters, and twelve leaves room for local codes.
CODE_MIN_LENGTH, CODE_MAX_LENGTH = 2, 12
CODE_REGEX = f"[A-Za-z0-9]{{{CODE_MIN_LENGTH},{CODE_MAX_LENGTH}}}"
_CODE = re.compile(CODE_REGEX)
# The names joinedup gives its own files: a code or month, then a fixed suffix.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9]+)?")


def is_code(text: object) -> bool:
    """True for an ODS/ONS-shaped code: letters and digits only, of a sensible length."""
    return isinstance(text, str) and _CODE.fullmatch(text) is not None


def code_file_name(code: str, suffix: str) -> str:
    """`<code><suffix>` (e.g. 'E06000043.html'), or UnsafeOutputPath if `code` is not a code."""
    if not is_code(code):
        raise UnsafeOutputPath(f"{code!r} is not an organisation code (letters and digits, "
                               f"{CODE_MIN_LENGTH}-{CODE_MAX_LENGTH} characters): no file is "
                               "named from it")
    return code + suffix


def inside(root: Path, path: Path) -> Path:
    """`path`, once checked to be plainly named below `root` (no '..', no hidden or odd names)
    and to resolve, links followed, inside `root`; else UnsafeOutputPath, before anything is
    written."""
    root, path = Path(root), Path(path)
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = ()
    if not parts or not all(_FILE_NAME.fullmatch(part) for part in parts):
        raise UnsafeOutputPath(f"refused to write {_shown(path)}: not a plain file name under "
                               "the reports folder")
    resolved, root_resolved = path.resolve(), root.resolve()
    if resolved == root_resolved or not resolved.is_relative_to(root_resolved):
        raise UnsafeOutputPath(f"refused to write {_shown(path)}: it resolves outside the "
                               "reports folder")
    return path


def _shown(path: Path) -> str:
    """The file's name only: an error names no server folders."""
    return repr(Path(path).name)
