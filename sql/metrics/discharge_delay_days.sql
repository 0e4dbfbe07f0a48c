/*
model: discharge_delay_days
kind: metric
metric_id: discharge_delay_days
title: Mean discharge delay of delayed discharges
sort_order: 10
unit: days
higher_is_better: false
numerator_label: delayed days
denominator_label: discharges delayed by 1 day or more
unit_cost: 307
grain: area_code (HWB of residence), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges
definition: Over canonical spells discharged in the month (DISDATE in the month; all ages, day
  cases, admission methods, providers, and deaths) whose DISDATE is after DISCHARGE_READY_DATE,
  the mean of (DISDATE - DISCHARGE_READY_DATE) in days. Numerator = total delayed days,
  denominator = discharges delayed by 1 day or more; spells with no ready date or discharged on
  or before it count in neither. By HWB of residence.
official_id: BCF 2025-26 "average length of discharge delay" part 2: average days delayed for
  patients not discharged on their discharge ready date (NHS England Discharge Ready Date)
source: SUS/HES Admitted Patient Care (apc extracts), DISCHARGE_READY_DATE. Unit cost £307 per
  delayed day = NAO 2015-16 (£90m / 293,000 planned avoided delayed days).
*/
with delayed as (
    select area_code, delay_days
    from int_month_discharges
    where delay_days > 0  -- discharged at least 1 day after DISCHARGE_READY_DATE
),

discharges as (
    select
        area_code,
        sum(delay_days) as delayed_days,
        count(*) as delayed_discharges
    from delayed
    group by area_code
)

select
    h.area_code,
    coalesce(d.delayed_days, 0) as numerator,
    coalesce(d.delayed_discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
