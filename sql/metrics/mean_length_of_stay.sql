/*
model: mean_length_of_stay
kind: metric
metric_id: mean_length_of_stay
title: Mean length of stay
sort_order: 7
unit: days
higher_is_better: false
numerator_label: bed days (DISDATE - ADMIDATE) of discharges
denominator_label: discharges
grain: area_code (HWB of residence), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges
definition: Mean of (DISDATE - ADMIDATE) in days over canonical spells discharged in the month
  (DISDATE in the month), including every discharge: all ages, day cases (0 days), admission
  methods, providers, and deaths. Numerator = total days, denominator = discharges. By HWB of
  residence.
official_id: BCF 2021-22 hospital discharge indicator "length of stay" (domain reference s1.1)
source: SUS/HES Admitted Patient Care (apc extracts).
*/
with discharges as (
    select
        area_code,
        sum(length_of_stay) as bed_days,
        count(*) as discharges
    from int_month_discharges
    group by area_code
)

select
    h.area_code,
    coalesce(d.bed_days, 0) as numerator,
    coalesce(d.discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
