/*
model: emergency_admissions_65plus
kind: metric
metric_id: emergency_admissions_65plus
title: Emergency admissions, people aged 65+
sort_order: 2
unit: per_100k
higher_is_better: false
numerator_label: emergency admissions of people aged 65+
denominator_label: residents aged 65+
unit_cost: 1613
grain: area_code (HWB of residence), period_month
period_column: admidate
depends_on: dim_hwb, int_month_admissions, int_month_population
definition: Hospital provider spells admitted in the month with an emergency admission method
  (ADMIMETH 21-25, 2A-2D, 28; transfers 2B included) of people aged 65 or over at admission
  (STARTAGE >= 65; 65 itself counts; 7001-7007 are age 0), per 100,000 residents aged 65+, by HWB
  of residence. Each spell counts once, in its canonical (latest) state.
official_id: BCF 2025-26 headline metric "emergency admissions to hospital for people aged 65+ per
  100,000" (domain reference s1.1); HES APC
source: SUS/HES Admitted Patient Care (apc extracts); ONS mid-year population estimates (65+).
  Unit cost £1,613 per admission = NAO 2015-16 (£171m / 106,000 planned avoided admissions).
*/
with emergency_65plus as (
    select area_code, procode, provspno
    from int_month_admissions
    where is_emergency  -- ref_admission_method.is_emergency
      and age >= 65  -- aged 65 or over at admission (stg_apc.age: STARTAGE, 7001-7007 as 0)
),

admissions as (
    select area_code, count(*) as admissions
    from emergency_65plus
    group by area_code
)

select
    h.area_code,
    coalesce(a.admissions, 0) as numerator,
    p.population_65plus as denominator
from dim_hwb as h
left join admissions as a on a.area_code = h.area_code
left join int_month_population as p on p.area_code = h.area_code
