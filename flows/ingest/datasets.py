"""What each dataset's file must hold: columns, types and the code lists their values come from.

Types: 'text' (kept as written, trimmed), 'int', 'date' (YYYY-MM-DD or DD/MM/YYYY), 'number'.
`codes` names a reference list in sql/reference/ (ref_<codes>.csv, column `code`) that a
non-empty value must belong to.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str = "text"
    required: bool = True
    codes: str | None = None


@dataclass(frozen=True)
class Dataset:
    name: str
    columns: tuple[Column, ...]
    # Exactly one of these person columns must be present for datasets that carry a person.
    person_columns: tuple[str, ...] = ()
    person_required: bool = False
    # The column that must equal the org code in the file name.
    org_column: str | None = None
    key: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


_DIAGNOSES = tuple(Column(f"DIAG_4_{i:02d}", required=False) for i in range(2, 21))

APC = Dataset(
    "apc",
    (
        Column("PROCODE"),
        Column("PROVSPNO"),
        Column("STARTAGE", "int"),
        Column("SEX", codes="sex"),
        Column("RESLADST_ONS"),
        Column("GPPRAC", required=False),
        Column("ADMIDATE", "date"),
        Column("ADMIMETH", codes="admission_method"),
        Column("ADMISORC", required=False, codes="admission_source"),
        Column("CLASSPAT", required=False, codes="patient_classification"),
        Column("DISDATE", "date", required=False),
        Column("DISMETH", required=False, codes="discharge_method"),
        Column("DISDEST", required=False, codes="discharge_destination"),
        Column("DISCHARGE_READY_DATE", "date", required=False),
        Column("DIAG_4_01"),
    ) + _DIAGNOSES,
    person_columns=("NEWNHSNO", "PSEUDO_ID"),
    person_required=True,
    org_column="PROCODE",
    key=("PROCODE", "PROVSPNO"),
)

REABLEMENT = Dataset(
    "reablement",
    (
        Column("LA_CODE"),
        Column("CLIENT_ID"),
        Column("AGE", "int"),
        Column("HOSP_DISCHARGE_DATE", "date"),
        Column("SERVICE_START_DATE", "date"),
        Column("STATUS_91D", required=False, codes="reablement_status"),
    ),
    person_columns=("NEWNHSNO", "PSEUDO_ID"),
    person_required=True,
    org_column="LA_CODE",
    key=("LA_CODE", "CLIENT_ID", "HOSP_DISCHARGE_DATE"),
)

CAREHOME = Dataset(
    "carehome",
    (
        Column("LA_CODE"),
        Column("CLIENT_ID"),
        Column("AGE", "int"),
        Column("ADMISSION_DATE", "date"),
        Column("SETTING", codes="care_setting"),
        Column("PERMANENT", codes="yes_no"),
        Column("FUNDING", codes="care_funding"),
    ),
    person_columns=("NEWNHSNO", "PSEUDO_ID"),
    person_required=False,
    org_column="LA_CODE",
    key=("LA_CODE", "CLIENT_ID", "ADMISSION_DATE"),
)

POPULATION = Dataset(
    "population",
    (Column("AREA_CODE"), Column("YEAR", "int"), Column("SEX", codes="population_sex"),
     Column("AGE", "int"), Column("POPULATION", "int")),
    key=("AREA_CODE", "YEAR", "SEX", "AGE"),
)

PLAN = Dataset(
    "plan",
    (Column("AREA_CODE"), Column("METRIC_ID"), Column("PERIOD"), Column("PLAN_VALUE", "number")),
    key=("AREA_CODE", "METRIC_ID", "PERIOD"),
)

ORGS = Dataset(
    "orgs",
    (Column("ORG_CODE"), Column("ORG_TYPE", codes="org_type"), Column("ORG_NAME"),
     Column("PARENT_CODE", required=False)),
    key=("ORG_CODE",),
)

# changes_<area_code>.csv: the month a local scheme started, for one metric or every one ('*');
# it starts a new rebase group of the area's SPC charts (sql/marts/metric_spc.sql).
CHANGES = Dataset(
    "changes",
    (Column("AREA_CODE"), Column("METRIC_ID"), Column("CHANGE_DATE"), Column("DESCRIPTION")),
    org_column="AREA_CODE",
    key=("AREA_CODE", "METRIC_ID", "CHANGE_DATE"),
)

DATASETS = {d.name: d for d in (APC, REABLEMENT, CAREHOME, POPULATION, PLAN, ORGS, CHANGES)}
