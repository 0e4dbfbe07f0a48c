/*
model: stg_changes
kind: view
grain: area_code, metric_id, change_month
depends_on: raw_changes
description: Local changes (a scheme's start date) that begin a new SPC rebase group of the
  area's own series; metric_id '*' means every metric. For a key in several files the latest
  file wins (its description).
*/
with ranked as (
    select
        upper(trim(area_code)) as area_code,
        trim(metric_id) as metric_id,
        try_strptime(trim(change_date) || '-01', '%Y-%m-%d')::date as change_month,
        description,
        row_number() over (
            partition by upper(trim(area_code)), trim(metric_id), trim(change_date)
            order by file_id desc
        ) as recency
    from raw_changes
)

select area_code, metric_id, change_month, description
from ranked
where recency = 1 and change_month is not null
