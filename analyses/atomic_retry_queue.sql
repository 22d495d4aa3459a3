-- Who the next run will try again, and why: every notification whose latest
-- outcome is not `delivered`, oldest first. `dbt compile` renders it for a worksheet.
select
    destination,
    user_id,
    dedupe_key,
    status,
    last_reason,
    failed_count,
    first_recorded_at,
    last_recorded_at
from {{ ref('atomic_delivery_status') }}
where status <> 'delivered'
order by first_recorded_at
