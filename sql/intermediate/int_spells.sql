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
select *
from stg_apc
-- the latest period's row wins, and within one period the latest submission
qualify row_number() over (partition by procode, provspno order by period desc, file_id desc) = 1
