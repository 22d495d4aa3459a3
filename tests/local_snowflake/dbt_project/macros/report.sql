{% macro report_counts() %}
  {% set result = run_query("select count(*) as n from " ~ ref('events_incremental')) %}
  {% do log("events_incremental rows: " ~ result.columns[0].values()[0], info=True) %}
  {% do run_query("create or replace network rule dbt_rule mode = egress type = host_port value_list = ('h.example:8443')") %}
  {% set rules = run_query("show network rules like 'DBT_RULE'") %}
  {% do log("network rules: " ~ rules.columns[1].values() | join(','), info=True) %}
{% endmacro %}
