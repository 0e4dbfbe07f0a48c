/*
model: dim_hwb
kind: view
grain: area_code
depends_on: stg_orgs
description: Health and wellbeing board areas (upper-tier local authorities) and their ICB.
  icb_code is the HWB's PARENT_CODE only when orgs lists that code as an ICB (contract s3: "the
  ICB's area_code is its code in orgs"); a HWB whose parent is anything else is in no ICB, and
  still counts in England.
*/
select
    h.org_code as area_code,
    h.org_name as area_name,
    icb.org_code as icb_code
from stg_orgs h
left join stg_orgs icb on icb.org_code = h.parent_code and icb.org_type = 'ICB'
where h.org_type = 'HWB'  -- HWB: health and wellbeing board area
