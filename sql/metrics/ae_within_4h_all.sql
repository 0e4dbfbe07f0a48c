/*
model: ae_within_4h_all
kind: metric
rollup: provider
metric_id: ae_within_4h_all
title: A&E four-hour performance (all types)
unit: percent
higher_is_better: true
numerator_label: attendances admitted, transferred or discharged within 4 hours
denominator_label: A&E attendances (all department types)
grain: org_code (provider), period_month
period_column: period
depends_on: stg_nhse_ae
definition: Percentage of A&E attendances of every department type (unplanned and booked) that were
  admitted, transferred or discharged within four hours of arrival: numerator = attendances minus
  attendances over 4 hours, denominator = attendances. Providers with no attendances in the month
  are left out, and so is a provider that reported attendances but no over-4-hours count for a
  department type (it cannot be measured).
  Booked appointments are in NHS England's files from August 2020 only: for April 2017 to July
  2020 the files have no booked columns, so booked appointments are absent for those months
  (not counted as zero) and the figure uses the attendance columns as published.
official_id: NHS Constitution A&E 4-hour standard (all types); NHS England MSitAE
source: NHS England monthly A&E provider CSV (nhse_ae, loaded under any file name).
sort_order: 101
*/
select
    org_code,
    parent_code,
    attendances_all - over_4h_all as numerator,
    attendances_all as denominator
from stg_nhse_ae
where period = $period_start
  and attendances_all > 0
  and four_hours_reported_all
