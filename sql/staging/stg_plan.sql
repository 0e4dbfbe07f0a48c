/*
model: stg_plan
kind: view
grain: area_code, metric_id, period
depends_on: raw_plan
description: BCF plan trajectories; for a key in several files the latest file wins.
*/
with ranked as (
    select
        upper(area_code) as area_code,
        metric_id,
        period,
        plan_value,
        row_number() over (partition by upper(area_code), metric_id, period order by file_id desc) as recency
    from raw_plan
)

select area_code, metric_id, period, plan_value
from ranked
where recency = 1
