/*
model: care_home_admissions_65plus
kind: metric
metric_id: care_home_admissions_65plus
title: Permanent admissions to residential and nursing care homes, people aged 65+
sort_order: 11
unit: per_100k
higher_is_better: false
numerator_label: permanent council-supported care home admissions of people aged 65+
denominator_label: residents aged 65+
grain: area_code (local authority = HWB), period_month
period_column: admission_date
depends_on: dim_hwb, stg_carehome, ref_yes_no, ref_care_funding, int_month_population
definition: carehome rows (a later file's row for the same LA, client and date replacing the
  earlier one) with ADMISSION_DATE in the month, PERMANENT Y (long-term placement), FUNDING LA
  (local authority supported) and AGE 65 or over at admission, residential or nursing, per
  100,000 residents aged 65+, by the reporting local authority (LA_CODE, which is the HWB).
official_id: ASCOF 2A(2) (2C from 2023-24): long-term support needs of older adults (65+) met by
  admission to residential and nursing care homes, per 100,000; BCF residential admissions metric
source: Local authority care home admission extracts (carehome), from SALT/CLD-style client
  records; ONS mid-year population estimates (65+). Code lists ref_yes_no.csv and
  ref_care_funding.csv.
*/
with permanent_codes as (
    select code from ref_yes_no
    where is_yes = 'true'  -- Y: long-term / permanent placement
),

council_funding_codes as (
    select code from ref_care_funding
    where code = 'LA'  -- LA: local authority supported
),

admissions_in_month as (
    select c.area_code
    from stg_carehome as c
    semi join permanent_codes as y on y.code = c.permanent
    semi join council_funding_codes as f on f.code = c.funding
    where c.admission_date between $period_start and $period_end
      and c.age >= 65  -- aged 65 or over at admission
),

admissions as (
    select area_code, count(*) as admissions
    from admissions_in_month
    group by area_code
)

select
    h.area_code,
    coalesce(a.admissions, 0) as numerator,
    p.population_65plus as denominator
from dim_hwb as h
left join admissions as a on a.area_code = h.area_code
left join int_month_population as p on p.area_code = h.area_code
