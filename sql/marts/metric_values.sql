/*
model: metric_values
kind: view
grain: period_month, area_type, area_code, metric_id
depends_on: metric_areas, stg_plan, provisional_cells
description: The contract's view of every figure (extracts contract s4): one row per month x area x
  metric with its numerator, denominator and value (metric_areas), its plan where a plan row
  exists for that area, metric and month (stg_plan; NULL otherwise), and its status:
  provisional while provisional_cells gives a reason, else final. Plan and status are joined
  here when the figures are read, never written into the cells, so a new plan file or later
  data changes them without rebuilding a month.
*/
select
    a.period_month,
    a.area_type,
    a.area_code,
    a.metric_id,
    a.numerator,
    a.denominator,
    a.value,
    p.plan_value,
    case when s.metric_id is null then 'final' else 'provisional' end as status
from metric_areas as a
left join stg_plan as p
    on p.area_code = a.area_code and p.metric_id = a.metric_id and p.period = a.period_month
left join provisional_cells as s
    on s.period_month = a.period_month and s.area_type = a.area_type
    and s.area_code = a.area_code and s.metric_id = a.metric_id
