/*
model: orgs
kind: view
grain: org_code
depends_on: stg_orgs
description: The organisation tree as reports read it.
*/
select org_code, org_type, org_name, parent_code
from stg_orgs
