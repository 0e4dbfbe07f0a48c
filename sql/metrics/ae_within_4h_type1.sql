/*
model: ae_within_4h_type1
kind: metric
rollup: provider
metric_id: ae_within_4h_type1
title: A&E four-hour performance (type 1)
unit: percent
higher_is_better: true
numerator_label: type 1 attendances admitted, transferred or discharged within 4 hours
denominator_label: type 1 A&E attendances
grain: org_code (provider), period_month
period_column: period
depends_on: stg_nhse_ae
definition: As ae_within_4h_all, for type 1 (major, consultant-led 24-hour) emergency departments
  only: unplanned and booked type 1 attendances minus those over 4 hours, over type 1 attendances.
  Providers with no type 1 attendances are left out.
  Booked appointments are in NHS England's files from August 2020 only: for April 2017 to July
  2020 the files have no booked columns, so booked appointments are absent for those months
  (not counted as zero) and the figure uses the attendance columns as published.
official_id: NHS England MSitAE, 4-hour performance, type 1 departments
source: NHS England monthly A&E provider CSV (nhse_ae, loaded under any file name).
sort_order: 102
*/
select
    org_code,
    parent_code,
    attendances_type1 - over_4h_type1 as numerator,
    attendances_type1 as denominator
from stg_nhse_ae
where period = $period_start
  and attendances_type1 > 0
  and four_hours_reported_type1
