/*
model: month_on_month_swing
kind: audit
severity: warn
depends_on: metric_areas
description: A value that moved more than 50% from the month before (and by more than 10
  numerator units) is worth a second look before the report goes out.
*/
select c.area_code, c.metric_id, p.value as previous_value, c.value
from metric_areas as c
join metric_areas as p
    on p.area_type = c.area_type and p.area_code = c.area_code and p.metric_id = c.metric_id
    and p.period_month = ($period_start::date - interval 1 month)::date
where c.period_month = $period_start
  and c.area_type <> 'provider'
  and abs(c.value - p.value) > 0.5 * abs(p.value)
  and abs(c.numerator - p.numerator) > 10
