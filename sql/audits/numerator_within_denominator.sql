/*
model: numerator_within_denominator
kind: audit
severity: fail
depends_on: metric_areas, metric_catalog
description: A percentage's numerator can never exceed its denominator, and no count is negative.
*/
select c.area_code, c.metric_id, c.numerator, c.denominator
from metric_areas as c
join metric_catalog as k using (metric_id)
where c.period_month = $period_start
  and ((k.unit = 'percent' and c.numerator > c.denominator) or c.numerator < 0 or c.denominator < 0)
