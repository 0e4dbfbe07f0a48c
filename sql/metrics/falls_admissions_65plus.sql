/*
model: falls_admissions_65plus
kind: metric
metric_id: falls_admissions_65plus
title: Emergency admissions due to falls, people aged 65+
sort_order: 4
unit: per_100k
higher_is_better: false
numerator_label: emergency admissions due to falls of people aged 65+
denominator_label: residents aged 65+
unit_cost: 1613
grain: area_code (HWB of residence), period_month
period_column: admidate
depends_on: dim_hwb, int_month_admissions, int_month_population, ref_icd10_injury, ref_icd10_falls
definition: Hospital provider spells admitted in the month with an emergency admission method
  (ADMIMETH 21-25, 2A-2D, 28; transfers 2B included) of people aged 65 or over at admission
  (STARTAGE >= 65), whose primary diagnosis (DIAG_4_01) is an injury S00-T98 (first three
  characters in ref_icd10_injury) and who have a fall external cause W00-W19 (first three
  characters in ref_icd10_falls) in any of DIAG_4_02..20. Codes are compared after removing
  dots and trailing X/- filler and upper-casing. Crude rate per 100,000 residents aged 65+ (no
  age standardisation), by HWB of residence. Each spell counts once.
official_id: PHOF C29 (formerly 2.24i), OHID Fingertips 22401: emergency hospital admissions due
  to falls in people aged 65 and over; BCF 2023-25 falls metric
source: SUS/HES Admitted Patient Care (apc extracts); ONS mid-year population estimates (65+).
  Code lists sql/reference/ref_icd10_injury.csv and ref_icd10_falls.csv (domain reference
  s1.3.3). The official figure is directly age-standardised; this one is crude, as the contract
  says. Unit cost £1,613 per admission = NAO 2015-16 (£171m / 106,000 planned avoided admissions).
*/
with emergency_65plus as (
    select area_code, procode, provspno, primary_diagnosis, secondary_diagnoses
    from int_month_admissions
    where is_emergency  -- ref_admission_method.is_emergency
      and age >= 65  -- aged 65 or over at admission (stg_apc.age: STARTAGE, 7001-7007 as 0)
),

injury_codes as (
    select distinct upper(trim(code_prefix)) as code_prefix from ref_icd10_injury
),

fall_codes as (
    select distinct upper(trim(code_prefix)) as code_prefix from ref_icd10_falls
),

injuries as (
    select e.area_code, e.procode, e.provspno, e.secondary_diagnoses
    from emergency_65plus as e
    semi join injury_codes as i on left(e.primary_diagnosis, 3) = i.code_prefix
),

secondary_codes as (
    select procode, provspno, unnest(secondary_diagnoses) as code
    from injuries
),

fall_causes as (
    select distinct s.procode, s.provspno
    from secondary_codes as s
    join fall_codes as f on left(s.code, 3) = f.code_prefix
),

falls as (
    select i.area_code, count(*) as admissions
    from injuries as i
    semi join fall_causes as f on f.procode = i.procode and f.provspno = i.provspno
    group by i.area_code
)

select
    h.area_code,
    coalesce(f.admissions, 0) as numerator,
    p.population_65plus as denominator
from dim_hwb as h
left join falls as f on f.area_code = h.area_code
left join int_month_population as p on p.area_code = h.area_code
