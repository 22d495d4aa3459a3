{{ config(materialized='incremental', unique_key='id', incremental_strategy='merge') }}
select id, name, {{ var('batch') }} as batch from {{ ref('people') }}
{% if is_incremental() %}
where id <= 2
union all
select 99 as id, 'dave' as name, {{ var('batch') }} as batch
{% endif %}
