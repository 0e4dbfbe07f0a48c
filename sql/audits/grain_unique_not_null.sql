/*
model: grain_unique_not_null
kind: audit
severity: fail
depends_on: metric_cells
description: Every metric cell is one (month, area type, area, metric) with no part missing.
*/
select period_month, area_type, area_code, metric_id, count(*) as copies
from metric_cells
where period_month = $period_start
group by all
having count(*) > 1 or area_code is null or metric_id is null
