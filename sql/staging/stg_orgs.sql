/*
model: stg_orgs
kind: view
grain: org_code
depends_on: raw_orgs
description: The organisation lookup; where several orgs files list an org, the latest file wins.
*/
select
    upper(org_code) as org_code,
    upper(org_type) as org_type,
    org_name,
    upper(parent_code) as parent_code
from raw_orgs
qualify row_number() over (partition by upper(org_code) order by file_id desc) = 1  -- the later file wins
