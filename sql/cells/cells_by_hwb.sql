/*
model: cells_by_hwb
kind: cells
rollup: hwb
grain: area_code (HWB)
depends_on: dim_hwb, metric_output
description: The metric_cells rows of a metric counted by HWB of residence (the default), for the
  month being built: every HWB in orgs, numerator 0 where the metric has no row for it (extracts
  contract s3: every cell present) and denominator as the metric gives it. metric_output holds
  the metric's own rows for the month (area_code, numerator, denominator). ICB and England are
  summed from these rows in metric_areas.
*/
select
    $period_start::date as period_month,
    'hwb' as area_type,
    h.area_code,
    $metric_id as metric_id,
    coalesce(m.numerator, 0) as numerator,
    m.denominator,
    null as parent_code
from dim_hwb as h
left join metric_output as m using (area_code)
