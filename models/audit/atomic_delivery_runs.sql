{#- One row per sender run and destination: what happened to its users. -#}
select
    run_id,
    max(invocation_id) as invocation_id,
    destination,
    min(recorded_at) as started_at,
    max(recorded_at) as finished_at,
    sum(case when status = 'delivered' then 1 else 0 end) as delivered_count,
    sum(case when status = 'failed' then 1 else 0 end) as failed_count,
    sum(case when status = 'invalid' then 1 else 0 end) as invalid_count,
    sum(case when status = 'skipped' then 1 else 0 end) as skipped_count
from {{ dbt_atomic.atomic_relation('outcomes') }}
group by run_id, destination
