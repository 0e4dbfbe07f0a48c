/*
model: emergency_admissions
kind: metric
metric_id: emergency_admissions
title: Emergency admissions
sort_order: 1
unit: per_100k
higher_is_better: false
numerator_label: emergency admissions
denominator_label: residents (all ages)
unit_cost: 1613
grain: area_code (HWB of residence), period_month
period_column: admidate
depends_on: dim_hwb, int_spells, int_month_population
definition: Hospital provider spells admitted in the month with an emergency admission method
  (ADMIMETH 21-25, 2A-2D, 28; transfers 2B included), per 100,000 residents of all ages, by HWB
  of residence. Each spell counts once, in its canonical (latest) state.
official_id: BCF non-elective admissions (2015-20 headline metric, M1); NHS England MAR / HES APC
source: SUS/HES Admitted Patient Care (apc extracts); ONS mid-year population estimates.
  Unit cost £1,613 per admission = NAO 2015-16 (£171m / 106,000 planned avoided admissions).
*/
with admissions as (
    select area_code, count(*) as admissions
    from int_spells
    where admidate between $period_start and $period_end
      and is_emergency  -- ref_admission_method.is_emergency
    group by area_code
)

select
    h.area_code,
    coalesce(a.admissions, 0) as numerator,
    p.population_all as denominator
from dim_hwb as h
left join admissions as a on a.area_code = h.area_code
left join int_month_population as p on p.area_code = h.area_code
