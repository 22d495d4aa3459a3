{#-
  Latest delivery status per destination and dedupe key: one row per
  notification the package has tried to send. A key that was ever delivered
  stays delivered; `skipped` rows only say that a run left the key alone.
-#}
with outcomes as (
    select * from {{ dbt_atomic.atomic_relation('outcomes') }}
    where status <> 'skipped'
),

latest as (
    select
        destination,
        dedupe_key,
        user_id,
        status,
        reason,
        run_id,
        recorded_at
    from outcomes
    qualify row_number() over (
        partition by destination, dedupe_key
        order by recorded_at desc, case when status = 'delivered' then 0 else 1 end
    ) = 1
),

history as (
    select
        destination,
        dedupe_key,
        min(case when status = 'delivered' then recorded_at end) as delivered_at,
        sum(case when status = 'failed' then 1 else 0 end) as failed_count,
        count(*) as outcome_count,
        min(recorded_at) as first_recorded_at
    from outcomes
    group by destination, dedupe_key
)

select
    latest.destination || '|' || latest.dedupe_key as delivery_key,
    latest.destination,
    latest.dedupe_key,
    latest.user_id,
    case when history.delivered_at is not null then 'delivered' else latest.status end as status,
    latest.reason as last_reason,
    latest.run_id as last_run_id,
    history.delivered_at,
    history.failed_count,
    history.outcome_count,
    history.first_recorded_at,
    latest.recorded_at as last_recorded_at
from latest
inner join history
    on
        latest.destination = history.destination
        and latest.dedupe_key = history.dedupe_key
