{#- Every HTTP request the senders made: one row per batch attempt. -#}
select
    run_id,
    invocation_id,
    destination,
    batch_id,
    attempt,
    http_status,
    latency_ms,
    rows_in_batch,
    bytes_in_batch,
    error,
    attempted_at,
    coalesce(http_status between 200 and 299, false) as succeeded
from {{ dbt_atomic.atomic_relation('attempts') }}
