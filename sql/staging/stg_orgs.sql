/*
model: stg_orgs
kind: view
grain: org_code
depends_on: raw_orgs
description: The organisation lookup; where several orgs files list an org, the latest file wins.
*/
with ranked as (
    select
        upper(org_code) as org_code,
        upper(org_type) as org_type,
        org_name,
        upper(parent_code) as parent_code,
        row_number() over (partition by upper(org_code) order by file_id desc) as recency
    from raw_orgs
)

select org_code, org_type, org_name, parent_code
from ranked
where recency = 1
