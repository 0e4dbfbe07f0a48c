/*
model: stg_plan
kind: view
grain: area_code, metric_id, period
depends_on: raw_plan
description: BCF plan trajectories; for a key in several files the latest file wins.
*/
select
    upper(area_code) as area_code,
    metric_id,
    period,
    plan_value
from raw_plan
qualify row_number() over (partition by upper(area_code), metric_id, period order by file_id desc) = 1  -- the later file wins
