"""Row rules of the contract (section 2), as one SQL query over the text table `src`.

`build_checked_sql` returns a SELECT giving, per input row, its typed values, `rule` (the name
of the first rule it fails, NULL when it loads) and `detail` (what is wrong and where; never a
person's id, and any number that could be an NHS number is withheld). Rules run in the order
below, so a row is quarantined under its most basic fault.
"""
from __future__ import annotations

import re
from datetime import date

from flows.ingest.datasets import Column, Dataset
from flows.ingest.identifiers import (
    clean_nhs_number_sql,
    could_be_nhs_number_sql,
    nhs_number_valid_sql,
    pseudonym_sql,
    withhold_numbers_sql,
)
from flows.paths import CODE_MAX_LENGTH, CODE_MIN_LENGTH, CODE_REGEX

AGE_MAX = 120
# HES STARTAGE 7001-7007: under one year (treated as 0 by the models).
INFANT_AGE_CODES = (7001, 7007)
# Key columns that identify a person: a quarantine detail names them but never shows them.
PERSON_KEY_COLUMNS = {"CLIENT_ID"}
POPULATION_AGE_MAX = 90  # ONS single year of age; 90 means 90 and over
TEN_DIGITS_MIN = 10 ** 9   # the smallest whole number written with ten digits


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _raw(colmap: dict[str, str], name: str) -> str:
    """The trimmed text of a column, NULL when empty or when the file does not have it."""
    if name not in colmap:
        return "cast(null as varchar)"
    return f"nullif(trim(src.\"{colmap[name]}\"), '')"


# Whole numbers only: a cast alone would round 64.5 to 65 and read 1e2 or 0x41 as numbers.
INTEGER_TEXT = "[+-]?[0-9]+"
# Four-digit years only: strptime reads 01/10/25 as the year 25.
DATE_TEXT = "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}"


def _typed(column: Column, raw: str, dataset: Dataset) -> str:
    if column.type == "int":
        return f"case when regexp_full_match({raw}, '{INTEGER_TEXT}') then try_cast({raw} as integer) end"
    if column.type == "number":
        return f"try_cast({raw} as double)"
    if column.type == "date":
        return (f"case when regexp_full_match({raw}, '{DATE_TEXT}') then "
                f"coalesce(try_strptime({raw}, '%Y-%m-%d'), try_strptime({raw}, '%d/%m/%Y'))::date end")
    if column.codes:
        return f"upper({raw})"
    return _stored_text(column, raw, dataset)


def _stored_text(column: Column, raw: str, dataset: Dataset) -> str:
    """Free text is stored, so a run of digits that could be an NHS number never is: in a key
    (a spell number) the value is pseudonymised, so the key still tells rows apart and a
    resubmission still matches; elsewhere (a name) the run is withheld. The length test first
    keeps the pattern off the short codes most columns hold."""
    if column.name in dataset.key:
        protected = pseudonym_sql(raw, pad="client")
    else:
        protected = withhold_numbers_sql(raw)
    return (f"case when length({raw}) >= 10 and {could_be_nhs_number_sql(raw)} "
            f"then {protected} else {raw} end")


def _rule(condition: str, rule: str, detail: str) -> tuple[str, str, str]:
    return condition, rule, detail


def _column_rules(dataset: Dataset, colmap: dict[str, str], org_code: str | None) -> list[tuple]:
    """`org_code` None: the rows of several files are judged together, each row carrying its
    file's organisation in FILE_ORG (see `build_checked_sql`)."""
    rules = []
    for name in dataset.key:
        rules.append(_rule(f"r.{name} is null", "missing_key",
                           f"'key column {name} is empty'"))
    if dataset.org_column:
        col = dataset.org_column
        org_sql = "upper(r.FILE_ORG)" if org_code is None else sql_text(org_code.upper())
        org_text = "' || r.FILE_ORG" if org_code is None else f"{org_code}'"
        rules.append(_rule(f"upper(r.{col}) <> {org_sql}", "org_mismatch",
                           f"'{col} ' || r.{col} || ' does not match the file name''s "
                           f"organisation {org_text}"))
    for column in dataset.columns:
        if column.required and column.name not in dataset.key:
            rules.append(_rule(f"r.{column.name} is null", "missing_value",
                               f"'required column {column.name} is empty'"))
    for column in dataset.columns:
        if column.type in ("int", "number", "date"):
            rule = "bad_date" if column.type == "date" else "bad_number"
            what = {"date": "a date (YYYY-MM-DD or DD/MM/YYYY)", "int": "a whole number",
                    "number": "a number"}[column.type]
            rules.append(_rule(f"r.{column.name} is not null and t.{column.name} is null", rule,
                               f"'{column.name} ''' || r.{column.name} || ''' is not {what}'"))
    for column in dataset.columns:
        if column.type in ("int", "number"):
            # no count, age, year or plan value has ten digits before its point; a value that
            # does is more likely an NHS number in the wrong column, and is not stored
            rules.append(_rule(f"abs(t.{column.name}) >= {TEN_DIGITS_MIN}", "bad_number",
                               f"'{column.name} ''' || r.{column.name} || ''' is implausibly "
                               "large (ten or more digits)'"))
    return rules


def _code_rules(dataset: Dataset, code_lists: dict[str, list[str]] | None) -> list[tuple]:
    """Codes must be in their sql/reference list. The caller passes the lists (read from the
    ref_ tables) so they become constant IN-lists, much faster than a subquery per row."""
    rules = []
    for c in dataset.columns:
        if not c.codes:
            continue
        if code_lists is None:
            allowed = f"select upper(trim(code)) from ref_{c.codes}"
        else:
            allowed = ", ".join(sql_text(code) for code in code_lists[c.codes])
        what = c.codes.replace("_", " ")
        rules.append(_rule(f"t.{c.name} is not null and t.{c.name} not in ({allowed})", "bad_code",
                           f"'{c.name} ''' || r.{c.name} || ''' is not a valid {what} code'"))
    return rules


def _apc_rules(period_start: date | None) -> list[tuple]:
    start = "r.FILE_PERIOD" if period_start is None else f"date '{period_start.isoformat()}'"
    end = f"(last_day({start}))"
    low, high = INFANT_AGE_CODES
    return [
        _rule(f"not (t.STARTAGE between 0 and {AGE_MAX} or t.STARTAGE between {low} and {high})",
              "age_out_of_range", f"'STARTAGE ' || t.STARTAGE || ' is not 0-{AGE_MAX} or {low}-{high}'"),
        _rule(f"t.ADMIDATE > {end}", "admidate_after_period_end",
              f"'ADMIDATE ' || t.ADMIDATE || ' is after the file''s period end ' || {end}"),
        _rule("t.DISDATE < t.ADMIDATE", "disdate_before_admidate",
              "'DISDATE ' || t.DISDATE || ' is before ADMIDATE ' || t.ADMIDATE"),
        _rule(f"t.DISDATE > {end}", "disdate_after_period_end",
              f"'DISDATE ' || t.DISDATE || ' is after the file''s period end ' || {end}"),
        _rule(f"t.DISDATE < {start}", "spell_outside_period",
              f"'the spell ended (' || t.DISDATE || ') before the file''s period began ' || {start}"),
    ]


def _age_rules(dataset: Dataset) -> list[tuple]:
    age_max = POPULATION_AGE_MAX if dataset.name == "population" else AGE_MAX
    rules = [_rule(f"not (t.AGE between 0 and {age_max})", "age_out_of_range",
                   f"'AGE ' || t.AGE || ' is not 0-{age_max}'")]
    if dataset.name == "population":
        rules.append(_rule("t.POPULATION < 0", "bad_number", "'POPULATION is negative'"))
    return rules


def _plan_rules(metric_ids: list[str] | None) -> list[tuple]:
    rules = [_rule("t.PERIOD_DATE is null", "bad_period",
                   "'PERIOD ''' || r.PERIOD || ''' is not a month (YYYY-MM)'")]
    if metric_ids is not None:
        # a plan for a metric joinedup does not have would never be shown against anything
        known = ", ".join(sql_text(m) for m in metric_ids) or "null"
        rules.append(_rule(f"r.METRIC_ID not in ({known})", "unknown_metric",
                           "'METRIC_ID ''' || r.METRIC_ID || ''' is not a metric joinedup has "
                           "(the metric_id of a file in sql/metrics, written as there)'"))
    return rules


def _orgs_rules() -> list[tuple]:
    # An organisation's code names its report page (flows/paths.py): letters and digits only.
    return [_rule(f"r.{column} is not null and not regexp_full_match(r.{column}, '{CODE_REGEX}')",
                  "bad_org_code",
                  f"'{column} ''' || r.{column} || ''' is not an organisation code "
                  f"(letters and digits only, {CODE_MIN_LENGTH} to {CODE_MAX_LENGTH} of them)'")
            for column in ("ORG_CODE", "PARENT_CODE")]


def _changes_rules() -> list[tuple]:
    return [_rule("try_strptime(r.CHANGE_DATE || '-01', '%Y-%m-%d') is null", "bad_period",
                  "'CHANGE_DATE ''' || r.CHANGE_DATE || ''' is not a month (YYYY-MM)'")]


def _dataset_rules(dataset: Dataset, period_start: date | None,
                   metric_ids: list[str] | None = None) -> list[tuple]:
    if dataset.name == "changes":
        return _changes_rules()
    if dataset.name == "apc":
        return _apc_rules(period_start)
    if dataset.name in ("reablement", "carehome", "population"):
        return _age_rules(dataset)
    if dataset.name == "plan":
        return _plan_rules(metric_ids)
    if dataset.name == "orgs":
        return _orgs_rules()
    return []


def _person_columns(dataset: Dataset, colmap: dict[str, str]) -> tuple[list[str], list[str]]:
    """Columns for the person: (read with the row, computed once the row is judged).

    The NHS number is cleaned and checked once per row, and hashed only for rows that load;
    it goes no further than this query.
    """
    if not dataset.person_columns:
        return ([], ["cast(null as varchar) as person_id", "false as nhs_number_invalid"])
    nhs = _raw(colmap, "NEWNHSNO")
    clean = clean_nhs_number_sql(nhs)
    pseudo = _raw(colmap, "PSEUDO_ID")
    pseudo_clean = clean_nhs_number_sql(pseudo)
    # A PSEUDO_ID that could be an NHS number (valid or not) is pseudonymised like one, never
    # stored; a valid one gets the same person_id as the number sent as NEWNHSNO.
    pseudo_is_nhs = could_be_nhs_number_sql(pseudo)
    read = [f"{nhs} is not null as nhs_present", f"{clean} as nhs_clean",
            f"try_cast({clean} as bigint) as nhs_bigint",
            f"case when coalesce({pseudo_is_nhs}, false) then {pseudonym_sql(pseudo_clean)} "
            f"else {pseudo} end as pseudo_id_raw"]
    if "CLIENT_ID" in colmap:
        # upper(): the same council's code written in another case is the same person's key
        client = "upper(" + _raw(colmap, "LA_CODE") + ") || chr(31) || " + _raw(colmap, "CLIENT_ID")
        read.append(f"{pseudonym_sql(client, pad='client')} as client_key")
    valid = nhs_number_valid_sql("nhs_clean", "nhs_bigint")
    loads = "failed_rule is null and key_count = 1"
    # the pseudonym comes from `pseudonyms` (see `_pseudonyms_cte`): one HMAC per distinct number
    judged = [f"case when not nhs_present then pseudo_id_raw "
              f"when {loads} and {valid} then pseudonyms.pseudonym end as person_id",
              f"(nhs_present and not coalesce({valid}, false)) as nhs_number_invalid"]
    if "CLIENT_ID" in colmap:
        judged.append("client_key")
    return read, judged


def _pseudonyms_cte(dataset: Dataset) -> tuple[str, str]:
    """(CTE, join) giving each distinct valid NHS number of the input its pseudonym once.

    A person has several spells, and a spell is in every monthly file while it is open, so
    hashing each distinct number once (two SHA-256 per HMAC) instead of each row saves most of
    the hashing. Numbers of rows that end up quarantined are hashed too; the pseudonym is only
    used for rows that load."""
    if not dataset.person_columns:
        return "", ""
    valid = nhs_number_valid_sql("nhs_clean", "nhs_bigint")
    cte = (f", pseudonyms as (select nhs_clean as number, {pseudonym_sql('nhs_clean')} as pseudonym "
           f"from (select distinct nhs_clean, nhs_bigint from failed where {valid}))")
    return cte, "left join pseudonyms on pseudonyms.number = r.nhs_clean"


_TYPED_REF = re.compile(r"\bt\.([A-Z0-9_]+)")


def _typed_refs(sql: str) -> str:
    """Rules say t.COL for a typed value and r.COL for the text as written; both live in one
    row here (typed values as t_COL), so each input row is read and judged in a single pass."""
    return _TYPED_REF.sub(r"t_\1", sql)


def build_checked_sql(dataset: Dataset, colmap: dict[str, str], *, org_code: str | None,
                      period_start: date | None,
                      code_lists: dict[str, list[str]] | None = None,
                      metric_ids: list[str] | None = None,
                      batched: bool = False, source: str = "src") -> str:
    """SELECT line_number, <typed columns>, person_id, rule, detail FROM src.

    `metric_ids`: for a plan, the metric ids joinedup has; a row naming another is quarantined.

    `batched`: `src` holds the rows of several files of the dataset, each row with its file's
    `file_key`, `file_org` and `file_period` (DATE); the rules use those instead of
    `org_code` and `period_start`, keys are unique within a file, and `file_key` is kept in
    the output. Planning this query costs far more than running it on one month's file, so
    judging many files at once saves most of the time of a folder of small files."""
    names = [c.name for c in dataset.columns]
    raw_cols = [f"{_raw(colmap, c.name)} as {c.name}" for c in dataset.columns]
    if batched:
        org_code = period_start = None
        raw_cols += ["src.file_key as FILE_KEY", "src.file_org as FILE_ORG",
                     "src.file_period as FILE_PERIOD"]
    typed_cols = [f"{_typed(c, 'r.' + c.name, dataset)} as t_{c.name}" for c in dataset.columns]
    if dataset.name == "plan":
        typed_cols.append("try_strptime(r.PERIOD || '-01', '%Y-%m-%d')::date as t_PERIOD_DATE")
        names.append("PERIOD_DATE")
    person_read, person_judged = _person_columns(dataset, colmap)
    pseudonyms_cte, pseudonyms_join = _pseudonyms_cte(dataset)
    rules = (_column_rules(dataset, colmap, org_code)
             + _dataset_rules(dataset, period_start, metric_ids) + _code_rules(dataset, code_lists))
    # Each condition is evaluated once; the failed rule's position picks its name and detail.
    case_rule = " ".join(f"when {cond} then {i}" for i, (cond, _, _) in enumerate(rules))
    rule_names = "[" + ", ".join(f"'{name}'" for _, name, _ in rules) + "]"
    case_detail = " ".join(f"when {i} then {detail}" for i, (_, _, detail) in enumerate(rules))
    key = (["r.FILE_KEY"] if batched else []) + [f"t.{k}" for k in dataset.key]
    same_key = " and ".join(f"repeated.k{i} is not distinct from {k}" for i, k in enumerate(key))
    dup_detail = " || ', ' || ".join(
        f"'{k} (not shown)'" if k in PERSON_KEY_COLUMNS else f"'{k} ' || coalesce(t.{k}::varchar, '')"
        for k in dataset.key)
    typed_out = ", ".join(f"t_{n} as {n}" for n in names)
    detail = f"""case
        when failed_rule is not null then coalesce(case failed_rule {case_detail} end,
                                                   {rule_names}[failed_rule + 1])
        when key_count > 1 then 'the key (' || {dup_detail} ||
             ') appears ' || key_count || ' times in the file; none of them is loaded'
    end"""
    return _typed_refs(f"""
        with r as (
            select src.line_number, {', '.join(raw_cols + person_read)} from {source} as src
        ),
        judged as (
            select r.*, {', '.join(typed_cols)} from r
        ),
        failed as materialized (
            select r.*, case {case_rule} end as failed_rule from judged as r
        ),
        repeated as (
            select {', '.join(f'{k} as k{i}' for i, k in enumerate(key))}, count(*) as key_count
            from failed as r group by all having count(*) > 1
        ){pseudonyms_cte}
        select {'r.FILE_KEY as file_key, ' if batched else ''}r.line_number, {typed_out},
               {', '.join(person_judged)},
               case when failed_rule is not null then {rule_names}[failed_rule + 1]
                    when key_count > 1 then 'duplicate_key' end as rule,
               {withhold_numbers_sql(detail)} as detail
        from (select r.*, coalesce(repeated.key_count, 1) as key_count
              from failed as r left join repeated on {same_key}) as r {pseudonyms_join}
    """)
