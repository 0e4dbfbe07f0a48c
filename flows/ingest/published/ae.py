"""NHS England "A&E Attendances and Emergency Admissions" monthly provider file, every generation
since 2017-18 (see the package's docstring)."""
from __future__ import annotations

from collections import Counter

import polars as pl

from flows.errors import FileRejected
from flows.ingest.published.common import (
    PublishedFile,
    _clean,
    _match,
    _norm,
    _numbers,
    _parse_month,
    _require,
    _Rows,
)
from flows.months import month_start

# NHS England has reworded the A&E file's headers over the years (2017-18 to March 2020:
# "Number of A&E attendances Type 1", "Number of attendances over 4hrs Other A&E Department";
# April 2020 on: "A&E attendances Type 1", "Attendances over 4hrs Other Department"; August 2020
# on: booked appointments too). Columns are mapped by these patterns on the normalised header,
# never by position or count, so each wording and any column order or extra column reads alike.
_NUMBER_OF = r"(number of |total )?"
_AE = r"(a ?& ?e|a and e|ae)"
_OVER_4H = r"(over|more than) 4 ?(hours?|hrs?|hs|h)"  # "over 4hrs", "over 4 hours"
_BOOKED = r"booked( appointments?)?"
_DEPARTMENTS = {"type1": r"type ?1", "type2": r"type ?2",
                "other": rf"(other( {_AE})?( departments?)?|types? 3 (and |& )?4)"}   # types 3 and 4
_DTA = r"from (dta|decision to admit) to admission"
_WAITED = r"(patients )?(who have )?(waited|waiting|spending)"
_HOURS = r"(hours?|hrs?|hs|h)"


def _ae_columns() -> dict[str, str]:
    cols = {"period": r"period",
            "org_code": r"((org(anisation)?|provider) )?code",
            "parent_org": r"parent org(anisation)?( name)?",
            "org_name": r"((org(anisation)?|provider) )?name"}
    for dept, name in _DEPARTMENTS.items():
        cols[f"att_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {name}"
    for dept, name in _DEPARTMENTS.items():
        cols[f"att_booked_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {_BOOKED} {name}"
    for dept, name in _DEPARTMENTS.items():
        cols[f"over4h_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {_OVER_4H} {name}"
    for dept, name in _DEPARTMENTS.items():
        cols[f"over4h_booked_{dept}"] = rf"{_NUMBER_OF}({_AE} )?attendances {_OVER_4H} {_BOOKED} {name}"
    # NHS England's header says "4-12 hs" (sic)
    cols["dta_4_12h"] = rf"{_NUMBER_OF}{_WAITED} 4 ?(to )?12 ?{_HOURS} {_DTA}"
    cols["dta_12h"] = rf"{_NUMBER_OF}{_WAITED} (over |more than )?12 ?\+? ?{_HOURS}( or more)? {_DTA}"
    for dept, name in _DEPARTMENTS.items():
        # "via A&E - Type 1", or the workbooks' "via Type 1 A&E"
        cols[f"emadm_ae_{dept}"] = rf"{_NUMBER_OF}emergency admissions via ({_AE} {name}|{name} {_AE})"
    cols["emadm_other"] = rf"{_NUMBER_OF}other emergency admissions( (i e )?not via {_AE})?"
    # Older spreadsheets count waits of more than 4 hours from decision to admit, the 12-hour
    # waits included; the 4-12 hour count is then this minus the 12-hour count (see read).
    cols["dta_over_4h"] = rf"{_NUMBER_OF}{_WAITED} (over |more than )?4 ?\+? ?{_HOURS}( or more)? {_DTA}"
    return cols


_AE_COLUMNS = _ae_columns()
_AE_TEXT = ("period", "org_code", "parent_org", "org_name")
_AE_COUNTS = tuple(c for c in _AE_COLUMNS if c not in _AE_TEXT and c != "dta_over_4h")  # raw_nhse_ae's
_AE_REQUIRED = ("period", "org_code", "att_type1", "att_type2", "att_other",
                "over4h_type1", "over4h_type2", "over4h_other")
# What a total row says in any of its first four fields; NHS England writes TOTAL, Total or Total .
_TOTAL_WORDS = {"total", "england total", "total england", "grand total", "england"}


def _is_total_row(rec: list[str], cols: dict[str, int]) -> bool:
    """NHS England's England row: TOTAL, Total or 'Total ' in any of the first four fields (some
    files leave Period, Org Code and Parent Org empty and say TOTAL only in Org name)."""
    fields = rec[:4] + [rec[cols[name]] for name in _AE_TEXT if name in cols]
    return any(_norm(v) in _TOTAL_WORDS for v in fields)


def matches(headers: list[str]) -> bool:
    """The header names a period, an organisation and attendance counts. Raises FileRejected
    when two of its columns mean the same."""
    cols = _match(headers, _AE_COLUMNS)
    return {"period", "org_code"} <= cols.keys() and any(k.startswith(("att_", "over4h_")) for k in cols)


def read(headers: list[str], data: list[list[str]]) -> PublishedFile:
    cols = _match(headers, _AE_COLUMNS)
    _require(cols, _AE_REQUIRED, "nhse_ae")
    rows = _Rows(data, headers, cols.values())
    # Only the columns this layout has: a measure it lacks (booked appointments before August
    # 2020) is None on every row, never 0, and has no total to check.
    counts_present = [c for c in _AE_COLUMNS if c in cols and c not in _AE_TEXT]

    parsed: dict[int, dict] = {}
    totals: list[tuple[int, dict, str | None, str]] = []
    for line, rec in enumerate(data, start=1):
        if not rows.shape_ok(line, rec):
            continue
        period_raw = _clean(rec[cols["period"]])
        if _is_total_row(rec, cols):
            values, bad = _numbers(rec, cols, counts_present, headers)
            totals.append((line, values, bad, period_raw))
            continue
        org = _clean(rec[cols["org_code"]]).upper()
        if not org:
            rows.quarantine(line, "missing_org_code", f"{headers[cols['org_code']].strip()} is empty")
            continue
        period = _parse_month(period_raw)
        if period is None:
            rows.quarantine(line, "bad_period", f"{headers[cols['period']].strip()}='{period_raw}'")
            continue
        values, bad = _numbers(rec, cols, counts_present, headers)
        parsed[line] = {"period": period, "org_code": org, "values": values, "bad": bad,
                        "parent_org": _clean(rec[cols["parent_org"]]) if "parent_org" in cols else None,
                        "org_name": _clean(rec[cols["org_name"]]) if "org_name" in cols else None}

    file_period = _ae_file_period(parsed)
    keys = {}
    for line, p in parsed.items():
        if p["period"] != file_period:
            rows.quarantine(line, "period_mismatch",
                            f"Period {p['period']}, the file's other rows are {file_period}")
        elif p["bad"]:
            rows.quarantine(line, "bad_number", p["bad"])
        keys[line] = (p["org_code"], p["period"])
    rows.quarantine_duplicates(keys, "duplicate_org", lambda k: f"Org Code {k[0]} in {k[1]}")

    # The TOTAL row: the first is the check row, any other is quarantined.
    total = totals[0] if totals else None
    for line, *_ in totals[1:]:
        rows.quarantine(line, "duplicate_total", f"a second TOTAL row (the first is data row {total[0]})")

    loaded = [line for line in parsed if line not in rows.quarantined]
    df = _ae_frame(loaded, parsed, file_period, counts_present)
    checks = _ae_checks(df, total, file_period, counts_present, headers, cols)
    notes = []
    if "dta_over_4h" in cols and "dta_4_12h" not in cols:
        notes.append("4-12 hour waits from decision to admit are the file's waits over 4 hours "
                     "minus its waits over 12 hours")
    missing = [c for c in _AE_COUNTS if c not in counts_present and c != "dta_4_12h"]
    if missing:
        notes.append(f"this layout has no {', '.join(missing)}: NULL on every row")
    return PublishedFile("nhse_ae", "NHSE", file_period, df, rows.quarantine_list(), len(totals[:1]),
                         len(data), checks, layout="monthly_provider", periods=[file_period],
                         notes=notes)


def _ae_file_period(parsed: dict[int, dict]) -> str:
    """The file's month is the month its provider rows state (the most common one)."""
    months = Counter(p["period"] for p in parsed.values())
    if not months:
        raise FileRejected("no_period", "no provider row carries a readable Period "
                           "(expected e.g. 'MSitAE-MARCH-2026')")
    file_period = months.most_common(1)[0][0]
    if len(months) > 1 and months.most_common(2)[1][1] == months[file_period]:
        raise FileRejected("no_period", f"provider rows disagree on the month: {dict(months)}")
    return file_period


def _dta_4_12h(values: dict) -> int | None:
    """Waits of 4-12 hours from decision to admit: published, else (older layouts) the waits
    over 4 hours minus those over 12 hours."""
    if values.get("dta_4_12h") is not None or values.get("dta_over_4h") is None:
        return values.get("dta_4_12h")
    over_12h = values.get("dta_12h") or 0
    return values["dta_over_4h"] - over_12h if values["dta_over_4h"] >= over_12h else None


def _ae_frame(loaded: list[int], parsed: dict[int, dict], file_period: str,
              counts_present: list[str]) -> pl.DataFrame:
    """The rows raw_nhse_ae takes: every count column, None where the layout lacks it (plus an
    older layout's waits over 4 hours from decision to admit, kept for the TOTAL check)."""
    counts = _AE_COUNTS + (("dta_over_4h",) if "dta_over_4h" in counts_present else ())
    frame = {"line_number": loaded, "period": [month_start(file_period)] * len(loaded)}
    for name in ("org_code", "parent_org", "org_name"):
        frame[name] = [parsed[line][name] for line in loaded]
    for name in counts:
        frame[name] = [parsed[line]["values"].get(name) for line in loaded]
    frame["dta_4_12h"] = [_dta_4_12h(parsed[line]["values"]) for line in loaded]
    schema = {"line_number": pl.Int64, "period": pl.Date, "org_code": pl.Utf8, "parent_org": pl.Utf8,
              "org_name": pl.Utf8, **{c: pl.Int64 for c in counts}}
    return pl.DataFrame(frame, schema=schema)


def _ae_checks(df: pl.DataFrame, total, file_period: str, counts_present: list[str],
               headers: list[str], cols: dict[str, int]) -> list[dict]:
    """The file's TOTAL row against the sum of its loaded provider rows, column by column (only
    the columns the file has: a derived column is checked through the ones it comes from)."""
    if total is None:
        return [{"check": "england_total", "column": None, "published": None, "computed": None,
                 "ok": False, "detail": "the file has no TOTAL row"}]
    t_line, t_values, t_bad, t_period = total
    checks = []
    for name in counts_present:
        computed = int(df.get_column(name).sum() or 0)
        published = t_values.get(name)
        check = {"check": "england_total", "column": name, "source_column": headers[cols[name]].strip(),
                 "published": published, "computed": computed,
                 "ok": published is not None and published == computed}
        if published is None:
            check["detail"] = f"TOTAL row (data row {t_line}) has no readable value" + (
                f": {t_bad}" if t_bad else "")
        checks.append(check)
    t_month = _parse_month(t_period) if _norm(t_period) not in _TOTAL_WORDS else None
    if t_month is not None and t_month != file_period:
        checks.append({"check": "total_period", "column": "period", "published": t_month,
                       "computed": file_period, "ok": False})
    return checks
