/*
model: discharge_to_usual_residence
kind: metric
metric_id: discharge_to_usual_residence
title: Discharges to usual place of residence
sort_order: 6
unit: percent
higher_is_better: true
numerator_label: discharges to usual place of residence
denominator_label: discharges of people alive with a known destination
grain: area_code (HWB of residence), period_month
period_column: disdate
depends_on: dim_hwb, int_month_discharges
definition: Of canonical spells discharged in the month (DISDATE in the month; all ages, day cases,
  admission methods and providers), excluding deaths (DISMETH 4/5 or DISDEST 79) and DISDEST 98/99
  (not applicable / not known), the share with DISDEST 19 (usual place of residence;
  ref_discharge_destination.is_usual_residence). DISDEST 29 (temporary residence) and care-home
  codes stay in the denominator only. A discharge with DISDEST left empty is not 98/99, so it
  stays in the denominator (and is not in the numerator). By HWB of residence.
official_id: BCF 2021-25 "discharge to usual (normal) place of residence" (domain reference M4)
source: SUS/HES Admitted Patient Care (apc extracts). Code lists ref_discharge_destination.csv and
  ref_discharge_method.csv (domain reference s1.3.4, s3.3, s3.4).
*/
with eligible as (
    select area_code, is_usual_residence
    from int_month_discharges
    where not is_death  -- DISMETH 4/5 or DISDEST 79 (ref_discharge_method / ref_discharge_destination.is_death)
      and not disdest_not_applicable_or_unknown  -- DISDEST 98/99 (ref_discharge_destination.is_not_applicable_or_unknown)
),

discharges as (
    select
        area_code,
        count(*) filter (where is_usual_residence) as to_usual_residence,  -- DISDEST 19 (ref_discharge_destination.is_usual_residence)
        count(*) as discharges
    from eligible
    group by area_code
)

select
    h.area_code,
    coalesce(d.to_usual_residence, 0) as numerator,
    coalesce(d.discharges, 0) as denominator
from dim_hwb as h
left join discharges as d on d.area_code = h.area_code
