/*
model: int_spells
kind: table
grain: procode, provspno
incremental_key: procode, provspno
depends_on: stg_apc
description: One row per hospital provider spell in its canonical state: the row from the latest
  period's file (a spell is re-sent every month while it is open; a resubmission has already
  replaced its file's rows). Refreshed by key: only spells in files loaded or replaced since
  the last build are recomputed.
*/
select * exclude (recency)
from (
    select
        *,
        row_number() over (partition by procode, provspno order by period desc, file_id desc) as recency
    from stg_apc
)
where recency = 1
