/*
model: dim_hwb
kind: view
grain: area_code
depends_on: stg_orgs
description: Health and wellbeing board areas (upper-tier local authorities) and their ICB.
*/
select
    org_code as area_code,
    org_name as area_name,
    parent_code as icb_code
from stg_orgs
where org_type = 'HWB'  -- HWB: health and wellbeing board area
