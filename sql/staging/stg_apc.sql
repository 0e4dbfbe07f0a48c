/*
model: stg_apc
kind: view
grain: file_id, procode, provspno
depends_on: raw_apc, ref_admission_method, ref_discharge_method, ref_discharge_destination
description: Admitted patient care rows from loaded files, typed and classified with the code lists.
*/
with admission_method as (
    select upper(code) as code, is_emergency = 'true' as is_emergency, is_transfer = 'true' as is_transfer
    from ref_admission_method
),

discharge_method as (
    select code, is_death = 'true' as is_death from ref_discharge_method
),

discharge_destination as (
    select
        code,
        is_death = 'true' as is_death,
        is_usual_residence = 'true' as is_usual_residence,
        is_not_applicable_or_unknown = 'true' as is_not_applicable_or_unknown
    from ref_discharge_destination
)

select
    -- ids
    a.file_id,
    a.period,
    a.procode,
    a.provspno,
    a.person_id,
    upper(a.resladst_ons) as area_code,
    -- dates
    a.admidate,
    a.disdate,
    a.discharge_ready_date,
    -- person
    case when a.startage between 7001 and 7007 then 0 else a.startage end as age,  -- 7001-7007: under one year
    -- admission
    a.admimeth,
    coalesce(am.is_emergency, false) as is_emergency,
    coalesce(am.is_transfer, false) as is_transfer,
    -- discharge
    a.dismeth,
    a.disdest,
    coalesce(dm.is_death, false) or coalesce(dd.is_death, false) as is_death,
    coalesce(dd.is_usual_residence, false) as is_usual_residence,
    coalesce(dd.is_not_applicable_or_unknown, false) as disdest_not_applicable_or_unknown,
    -- diagnoses
    icd10_normalise(a.diag_4_01) as primary_diagnosis,
    list_filter([
        icd10_normalise(a.diag_4_02), icd10_normalise(a.diag_4_03), icd10_normalise(a.diag_4_04),
        icd10_normalise(a.diag_4_05), icd10_normalise(a.diag_4_06), icd10_normalise(a.diag_4_07),
        icd10_normalise(a.diag_4_08), icd10_normalise(a.diag_4_09), icd10_normalise(a.diag_4_10),
        icd10_normalise(a.diag_4_11), icd10_normalise(a.diag_4_12), icd10_normalise(a.diag_4_13),
        icd10_normalise(a.diag_4_14), icd10_normalise(a.diag_4_15), icd10_normalise(a.diag_4_16),
        icd10_normalise(a.diag_4_17), icd10_normalise(a.diag_4_18), icd10_normalise(a.diag_4_19),
        icd10_normalise(a.diag_4_20)
    ], lambda code: code is not null) as secondary_diagnoses
from raw_apc as a
left join admission_method as am on am.code = upper(a.admimeth)
left join discharge_method as dm on dm.code = a.dismeth
left join discharge_destination as dd on dd.code = a.disdest
