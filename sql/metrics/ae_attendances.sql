/*
model: ae_attendances
kind: metric
rollup: provider
metric_id: ae_attendances
title: A&E attendances
unit: count
higher_is_better: false
numerator_label: A&E attendances (all department types, unplanned and booked)
denominator_label: none (a count)
grain: org_code (provider), period_month
period_column: period
depends_on: stg_nhse_ae
definition: Attendances at A&E departments of every type (type 1 major emergency departments,
  type 2 single-specialty, other: urgent treatment centres, minor injury units, walk-in centres),
  unplanned and booked appointments, as each provider reported them to NHS England for the month.
  A provider-level measure: ICB = the providers whose ICB in orgs is one of ours; England = every
  provider in the file (equal to NHS England's published TOTAL row, which the load checks).
  Booked appointments are in NHS England's files from August 2020 only: for April 2017 to July
  2020 the files have no booked columns, so booked appointments are absent for those months
  (not counted as zero) and the figure uses the attendance columns as published.
official_id: NHS England A&E Attendances and Emergency Admissions (MSitAE), total attendances
source: NHS England monthly A&E provider CSV (nhse_ae, loaded under any file name).
sort_order: 100
*/
select
    org_code,
    parent_code,
    attendances_all as numerator,
    null::double as denominator
from stg_nhse_ae
where period = $period_start
