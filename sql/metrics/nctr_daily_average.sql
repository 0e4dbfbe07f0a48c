/*
model: nctr_daily_average
kind: metric
rollup: provider
denominator_rollup: max
metric_id: nctr_daily_average
title: Patients not meeting the criteria to reside (daily average)
unit: mean
higher_is_better: false
numerator_label: patient-days not meeting the criteria to reside (sum of the daily counts)
denominator_label: days with data
grain: org_code (provider), period_month
period_column: date
depends_on: stg_nhse_discharge
definition: Mean over the month's days of the number of patients in hospital who no longer meet
  the criteria to reside (medically ready for discharge but still in a bed). Provider: the sum of
  its daily counts over the days it reported. ICB and England: the sum of their providers' daily
  counts over the number of days with data (the most days any of their providers reported), i.e.
  the mean of the daily total when every provider reports every day.
official_id: NHS England acute discharge situation report, patients not meeting criteria to reside
source: NHS England acute discharge sitrep by trust and day (nhse_discharge, loaded under any
  file name). Provider parent from orgs only (the sitrep gives none).
sort_order: 105
*/
select
    org_code,
    null as parent_code,
    sum(nctr) as numerator,
    count(nctr) as denominator
from stg_nhse_discharge
where period_month = $period_start
  and nctr is not null
group by org_code
