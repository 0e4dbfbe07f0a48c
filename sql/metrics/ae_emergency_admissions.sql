/*
model: ae_emergency_admissions
kind: metric
rollup: provider
metric_id: ae_emergency_admissions
title: Emergency admissions via A&E
unit: count
higher_is_better: false
numerator_label: emergency admissions via A&E
denominator_label: none (a count)
grain: org_code (provider), period_month
period_column: period
depends_on: stg_nhse_ae
definition: Emergency admissions via A&E departments of every type (type 1, type 2 and other), as
  each provider reported them to NHS England for the month. Other emergency admissions (not via
  A&E) are not counted. By provider of treatment, not residence: compare with
  emergency_admissions (apc extracts, by HWB of residence) only at England level.
official_id: NHS England MSitAE, emergency admissions via A&E
source: NHS England monthly A&E provider CSV (nhse_ae, loaded under any file name).
sort_order: 103
*/
select
    org_code,
    parent_code,
    emergency_admissions_via_ae as numerator,
    null::double as denominator
from stg_nhse_ae
where period = $period_start
