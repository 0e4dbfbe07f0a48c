/*
model: long_stay_21plus
kind: metric
metric_id: long_stay_21plus
title: Discharges after a stay of 21 days or more
sort_order: 8
unit: percent
higher_is_better: false
numerator_label: discharges after a stay of 21 days or more
denominator_label: discharges
grain: area_code (HWB of residence), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges
definition: Of canonical spells discharged in the month (DISDATE in the month; all ages, day
  cases, admission methods, providers, and deaths), the share whose stay (DISDATE - ADMIDATE) was
  21 days or more. By HWB of residence.
official_id: BCF 2021-22 hospital discharge indicator "length of stay" (% of stays of 21 days or
  more; domain reference s1.1, threshold UNVERIFIED there)
source: SUS/HES Admitted Patient Care (apc extracts).
*/
with discharges as (
    select
        area_code,
        count(*) filter (where length_of_stay >= 21) as long_stays,  -- 21 days or more
        count(*) as discharges
    from int_month_discharges
    group by area_code
)

select
    h.area_code,
    coalesce(d.long_stays, 0) as numerator,
    coalesce(d.discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
