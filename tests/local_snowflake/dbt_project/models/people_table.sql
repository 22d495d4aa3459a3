{{ config(materialized='table', grants={'select': ['reporter']}, post_hook="insert into {{ target.database }}.{{ target.schema }}.hook_log values ('post_hook', 'people_table')") }}
select id, name, balance from {{ ref('people') }}
