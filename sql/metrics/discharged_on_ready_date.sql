/*
model: discharged_on_ready_date
kind: metric
metric_id: discharged_on_ready_date
title: Discharged on the discharge ready date
sort_order: 9
unit: percent
higher_is_better: true
numerator_label: discharges on or before the discharge ready date
denominator_label: discharges with a discharge ready date
grain: area_code (HWB of residence), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges
definition: Of canonical spells discharged in the month (DISDATE in the month; all ages, day cases,
  admission methods, providers, and deaths) with DISCHARGE_READY_DATE present, the share with
  DISDATE on or before DISCHARGE_READY_DATE (a discharge before the recorded ready date counts as
  on it). By HWB of residence.
official_id: BCF 2025-26 "average length of discharge delay" part 1: % of patients discharged on
  their discharge ready date (NHS England Discharge Ready Date, PRN00312 / PRN00603_i)
source: SUS/HES Admitted Patient Care (apc extracts), DISCHARGE_READY_DATE.
*/
with ready as (
    select area_code, disdate, discharge_ready_date
    from int_month_discharges
    where discharge_ready_date is not null
),

discharges as (
    select
        area_code,
        count(*) filter (where disdate <= discharge_ready_date) as on_ready_date,  -- on or before the ready date
        count(*) as discharges
    from ready
    group by area_code
)

select
    h.area_code,
    coalesce(d.on_ready_date, 0) as numerator,
    coalesce(d.discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
