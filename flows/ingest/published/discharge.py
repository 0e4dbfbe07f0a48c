"""NHS England acute discharge sitrep by trust and day (the layouts kept by the healthyr package)."""
from __future__ import annotations

import polars as pl

from flows.errors import FileRejected
from flows.ingest.published.common import (
    PublishedFile,
    _clean,
    _match,
    _numbers,
    _parse_date,
    _require,
    _Rows,
)

_DISCHARGE_COLUMNS: dict[str, str] = {
    "org_code": r"(nhs )?trust[0-9]* code|org(anisation)? code|provider code",
    "org_name": r"(nhs )?trust[0-9]* name|org(anisation)? name|provider name",
    "date": r"date|period",
    "nctr": r"(number of )?(patients )?(who )?(do not|no longer|not) meet(ing)? (the )?criteria to reside",
    "discharges": r"discharged total|(number of )?(patients )?discharged|discharges|total discharges",
    "discharges_by_1700": r"discharged by 1700|discharged before 1700",
    "discharges_1701_2359": r"discharged between 1701 2359|discharged after 1700",
}
_DISCHARGE_MEASURES = ("nctr", "discharges", "discharges_by_1700", "discharges_1701_2359")


def matches(headers: list[str]) -> bool:
    """The header names a trust, a date and a measure. Raises FileRejected when two of its
    columns mean the same."""
    cols = _match(headers, _DISCHARGE_COLUMNS)
    return {"org_code", "date"} <= cols.keys() and any(k in cols for k in _DISCHARGE_MEASURES)


def read(headers: list[str], data: list[list[str]]) -> PublishedFile:
    cols = _match(headers, _DISCHARGE_COLUMNS)
    _require(cols, ("org_code", "date"), "nhse_discharge")
    measures = [m for m in _DISCHARGE_MEASURES if m in cols]
    if not ({"nctr", "discharges"} & set(measures)):
        raise FileRejected("missing_column", "nhse_discharge: neither patients not meeting the criteria "
                           "to reside nor discharges")
    rows = _Rows(data, headers, cols.values())
    parsed: dict[int, dict] = {}
    for line, rec, org in rows.with_code(cols["org_code"], "missing_org_code"):
        day = _parse_date(rec[cols["date"]])
        if day is None:
            rows.quarantine(line, "bad_date",
                            f"{headers[cols['date']].strip()}='{rec[cols['date']].strip()}'")
            continue
        values, bad = _numbers(rec, cols, measures, headers)
        if bad:
            rows.quarantine(line, "bad_number", bad)
            continue
        parsed[line] = {"org_code": org, "date": day, "values": values,
                        "org_name": _clean(rec[cols["org_name"]]) or None if "org_name" in cols else None}
    rows.quarantine_duplicates({line: (p["org_code"], p["date"]) for line, p in parsed.items()},
                               "duplicate_org", lambda k: f"trust {k[0]} on {k[1].isoformat()}")

    loaded = [line for line in parsed if line not in rows.quarantined]
    days = [parsed[line]["date"] for line in loaded]
    frame = {"line_number": loaded, "period": [d.replace(day=1) for d in days], "date": days,
             "org_code": [parsed[line]["org_code"] for line in loaded],
             "org_name": [parsed[line]["org_name"] for line in loaded]}
    for m in _DISCHARGE_MEASURES:
        frame[m] = [parsed[line]["values"].get(m) for line in loaded]
    schema = {"line_number": pl.Int64, "period": pl.Date, "date": pl.Date, "org_code": pl.Utf8,
              "org_name": pl.Utf8, **{m: pl.Int64 for m in _DISCHARGE_MEASURES}}
    df = pl.DataFrame(frame, schema=schema)

    periods = sorted({d.strftime("%Y-%m") for d in days})
    checks = []
    if {"discharges", "discharges_by_1700", "discharges_1701_2359"} <= set(measures):
        split = df.filter(pl.col("discharges_by_1700").is_not_null()
                          & pl.col("discharges_1701_2359").is_not_null()
                          & pl.col("discharges").is_not_null())
        published = int(split.get_column("discharges").sum() or 0)
        computed = int((split.get_column("discharges_by_1700")
                        + split.get_column("discharges_1701_2359")).sum() or 0)
        bad_rows = split.filter(pl.col("discharges_by_1700") + pl.col("discharges_1701_2359")
                                != pl.col("discharges")).height
        checks.append({"check": "discharge_split", "column": "discharges", "published": published,
                       "computed": computed, "ok": published == computed and bad_rows == 0,
                       "rows_checked": split.height, "rows_failing": bad_rows})
    layout = "daily_" + "_".join(m for m in ("nctr", "discharges") if m in measures)
    notes = []
    if len(periods) > 1:
        notes.append(f"the file covers {len(periods)} months ({periods[0]} to {periods[-1]}); "
                     "period is None and each row carries its own")
    return PublishedFile("nhse_discharge", "NHSE", periods[0] if len(periods) == 1 else None, df,
                         rows.quarantine_list(), 0, len(data), checks, layout=layout, periods=periods,
                         notes=notes)
