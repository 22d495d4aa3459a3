{#-
  `dbt run-operation atomic_setup [--args '{dry_run: true}']`

  Builds the plan (a list of statements) for the current adapter, logs it as
  `1 of N ...`, then runs it. A dry run prints the plan and changes nothing.
-#}
{% macro atomic_setup(dry_run=false) %}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set config = dbt_atomic.atomic_config() -%}
  {%- set plan = adapter.dispatch('atomic_setup_plan', 'dbt_atomic')(config) -%}
  {{ dbt_atomic._run_plan(plan, dry_run, 'atomic_setup') }}
  {%- if not dry_run -%}
    {%- do adapter.dispatch('atomic_setup_after', 'dbt_atomic')(config) -%}
  {%- endif -%}
{% endmacro %}


{% macro default__atomic_setup_plan(config) %}
  {{ exceptions.raise_compiler_error(
      "dbt_atomic: atomic_setup supports Snowflake only (it needs external network access, secrets and "
      ~ "Python stored procedures); this target uses the '" ~ target.type ~ "' adapter.") }}
{% endmacro %}


{% macro default__atomic_setup_after(config) %}
{% endmacro %}


{#-
  Logs and runs a plan: a list of {'description': ..., 'sql': ...}.
  Statements that may carry generated names are logged by description only;
  the SQL itself goes to dbt's debug log like every statement dbt runs, so a
  plan must never contain a secret value.
-#}
{% macro _run_plan(plan, dry_run, title) %}
  {%- set total = plan | length -%}
  {%- if dry_run -%}
    {{ log(title ~ ": dry run, " ~ total ~ " statements planned, nothing is changed", info=true) }}
  {%- else -%}
    {{ log(title ~ ": " ~ total ~ " statements", info=true) }}
  {%- endif -%}
  {%- for step in plan -%}
    {{ log(loop.index ~ " of " ~ total ~ " " ~ step.description, info=true) }}
    {%- if dry_run -%}
      {{ log(step.sql ~ ";\n", info=true) }}
    {%- else -%}
      {%- call statement('atomic_setup_step', fetch_result=false, auto_begin=false) -%}
        {{ step.sql }}
      {%- endcall -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if not dry_run -%}
    {{ log(title ~ ": done", info=true) }}
  {%- endif -%}
{% endmacro %}
