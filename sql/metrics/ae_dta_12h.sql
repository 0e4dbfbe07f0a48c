/*
model: ae_dta_12h
kind: metric
rollup: provider
metric_id: ae_dta_12h
title: Waits of 12 hours or more from decision to admit
unit: count
higher_is_better: false
numerator_label: patients waiting 12+ hours from decision to admit to admission
denominator_label: none (a count)
grain: org_code (provider), period_month
period_column: period
depends_on: stg_nhse_ae
definition: Patients who waited more than 12 hours from the decision to admit them to their
  admission ("12-hour trolley waits"), as each provider reported them to NHS England for the month.
official_id: NHS England MSitAE, patients waiting 12+ hours from decision to admit
source: NHS England monthly A&E provider CSV (nhse_ae, loaded under any file name).
sort_order: 104
*/
select
    org_code,
    parent_code,
    dta_12h as numerator,
    null::double as denominator
from stg_nhse_ae
where period = $period_start
