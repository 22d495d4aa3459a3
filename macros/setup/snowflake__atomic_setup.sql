{#-
  The Snowflake plan, in dependency order. Every statement is safe to run
  again: objects that hold state (secrets, owned tables, the network rule and
  the integration) are created if missing and altered in place, never
  replaced; procedures are replaced and their grants made again.
  No statement carries a secret value: secrets are created with a
  placeholder and their values are set outside dbt (see the README).
-#}

{% macro atomic_secret_placeholder() %}
  {{ return('dbt_atomic:unset') }}
{% endmacro %}


{% macro atomic_integration_name(config) %}
  {%- set name = var('atomic_integration_name', config.object_prefix ~ config.database ~ '_' ~ config.schema ~ '_access') -%}
  {%- do dbt_atomic._validate_identifier(name, 'atomic_integration_name') -%}
  {{ return(name) }}
{% endmacro %}


{#- The procedures atomic_setup deploys: all run the same handler module. -#}
{% macro atomic_procedures() %}
  {{ return([
      {'name': 'send', 'handler': 'send',
       'args': [('request', 'varchar', none)]},
      {'name': 'post', 'handler': 'post',
       'args': [('destination', 'varchar', none), ('payload', 'varchar', none)]},
      {'name': 'store_event', 'handler': 'store_event',
       'args': [('destination', 'varchar', none), ('user_id', 'varchar', none),
                ('event_name', 'varchar', none), ('properties', 'varchar', 'null')]},
  ]) }}
{% endmacro %}


{% macro atomic_procedure_signature(procedure) %}
  {%- set types = [] -%}
  {%- for arg in procedure.args -%}{%- do types.append(arg[1]) -%}{%- endfor -%}
  {%- do types.append('varchar') -%}
  {{ return(dbt_atomic.atomic_object_name(procedure.name) ~ '(' ~ types | join(', ') ~ ')') }}
{% endmacro %}


{% macro snowflake__atomic_setup_plan(config) %}
  {%- if config.destinations | length == 0 -%}
    {{ exceptions.raise_compiler_error(
        "dbt_atomic: no destinations configured. Set the var atomic_destinations in your dbt_project.yml (see the README).") }}
  {%- endif -%}
  {%- set plan = [] -%}
  {%- set schema = config.database ~ '.' ~ config.schema -%}
  {%- set rule = dbt_atomic.atomic_object_name('egress_rule') -%}
  {%- set integration = dbt_atomic.atomic_integration_name(config) -%}
  {%- set hosts = dbt_atomic._egress_hosts(config) -%}
  {%- set secrets = dbt_atomic._destination_secrets(config) -%}
  {%- set host_list = [] -%}
  {%- for host in hosts -%}{%- do host_list.append(dbt_atomic.atomic_string_literal(host)) -%}{%- endfor -%}
  {%- set secret_list = [] -%}
  {%- for secret in secrets -%}{%- do secret_list.append(secret.object) -%}{%- endfor -%}

  {%- do plan.append({'description': 'schema ' ~ schema,
      'sql': 'create schema if not exists ' ~ schema}) -%}

  {%- do plan.append({'description': 'network rule ' ~ rule ~ ' (' ~ hosts | join(', ') ~ ')',
      'sql': 'create network rule if not exists ' ~ rule ~ '\n  mode = egress\n  type = host_port\n  value_list = (' ~ host_list | join(', ') ~ ')'}) -%}
  {%- do plan.append({'description': 'network rule ' ~ rule ~ ': set its hosts',
      'sql': 'alter network rule ' ~ rule ~ ' set value_list = (' ~ host_list | join(', ') ~ ')'}) -%}

  {%- for secret in secrets -%}
    {%- set placeholder = dbt_atomic.atomic_string_literal(dbt_atomic.atomic_secret_placeholder()) -%}
    {%- if secret.type == 'password' -%}
      {%- set sql = 'create secret if not exists ' ~ secret.object ~ '\n  type = password\n  username = ' ~ placeholder ~ '\n  password = ' ~ placeholder -%}
    {%- else -%}
      {%- set sql = 'create secret if not exists ' ~ secret.object ~ '\n  type = generic_string\n  secret_string = ' ~ placeholder -%}
    {%- endif -%}
    {%- do plan.append({'description': 'secret ' ~ secret.object ~ ' (if missing; its value is set outside dbt)', 'sql': sql}) -%}
  {%- endfor -%}

  {%- set integration_settings = 'allowed_network_rules = (' ~ rule ~ ')\n  allowed_authentication_secrets = (' ~ secret_list | join(', ') ~ ')\n  enabled = true' -%}
  {%- do plan.append({'description': 'external access integration ' ~ integration,
      'sql': 'create external access integration if not exists ' ~ integration ~ '\n  ' ~ integration_settings}) -%}
  {%- do plan.append({'description': 'external access integration ' ~ integration ~ ': set its rules and secrets',
      'sql': 'alter external access integration ' ~ integration ~ ' set\n  ' ~ integration_settings}) -%}

  {%- for table in dbt_atomic.atomic_owned_tables() -%}
    {%- set relation = dbt_atomic.atomic_relation(table.name) -%}
    {%- do plan.append({'description': 'table ' ~ relation ~ ' (if missing)',
        'sql': 'create table if not exists ' ~ relation ~ ' (\n  ' ~ table.columns | join(',\n  ') ~ '\n)'}) -%}
  {%- endfor -%}
  {%- do plan.append({'description': 'token cache: no access for PUBLIC (it holds a bearer credential)',
      'sql': 'revoke all privileges on table ' ~ dbt_atomic.atomic_relation('token_cache') ~ ' from role public'}) -%}

  {%- set settings_literal = dbt_atomic.atomic_string_literal(dbt_atomic.atomic_settings_json(config)) -%}
  {%- set secret_bindings = [] -%}
  {%- for secret in secrets -%}
    {%- do secret_bindings.append("'" ~ secret.alias ~ "' = " ~ secret.object) -%}
  {%- endfor -%}
  {%- for procedure in dbt_atomic.atomic_procedures() -%}
    {%- set args = [] -%}
    {%- for name, type, default in procedure.args -%}
      {%- do args.append(name ~ ' ' ~ type ~ (' default ' ~ default if default else '')) -%}
    {%- endfor -%}
    {%- do args.append('settings varchar default ' ~ settings_literal) -%}
    {%- set sql -%}
create or replace procedure {{ dbt_atomic.atomic_object_name(procedure.name) }}(
  {{ args | join(',\n  ') }}
)
returns varchar
language python
runtime_version = '{{ config.runtime_version }}'
packages = ('snowflake-snowpark-python', 'requests')
handler = '{{ procedure.handler }}'
external_access_integrations = ({{ integration }})
secrets = ({{ secret_bindings | join(', ') }})
execute as owner
as
$${{ dbt_atomic._atomic_handler_source() }}$$
    {%- endset -%}
    {%- do plan.append({'description': 'procedure ' ~ dbt_atomic.atomic_object_name(procedure.name), 'sql': sql}) -%}
  {%- endfor -%}

  {%- for grant in dbt_atomic._atomic_grants(config) -%}
    {%- do plan.append(grant) -%}
  {%- endfor -%}
  {{ return(plan) }}
{% endmacro %}


{#-
  Grants, made again on every run (replacing a procedure drops its grants).
  The sender role only needs USAGE on the procedures: they run with the
  owner's rights, so it never reads the token cache or the secrets itself.
-#}
{% macro _atomic_grants(config) %}
  {%- set grants = [] -%}
  {%- if config.sender_role -%}
    {%- do dbt_atomic._validate_identifier(config.sender_role, 'atomic_sender_role') -%}
    {%- do grants.append({'description': 'grant usage on database ' ~ config.database ~ ' to role ' ~ config.sender_role,
        'sql': 'grant usage on database ' ~ config.database ~ ' to role ' ~ config.sender_role}) -%}
    {%- do grants.append({'description': 'grant usage on schema ' ~ config.database ~ '.' ~ config.schema ~ ' to role ' ~ config.sender_role,
        'sql': 'grant usage on schema ' ~ config.database ~ '.' ~ config.schema ~ ' to role ' ~ config.sender_role}) -%}
    {%- for procedure in dbt_atomic.atomic_procedures() -%}
      {%- set signature = dbt_atomic.atomic_procedure_signature(procedure) -%}
      {%- do grants.append({'description': 'grant usage on procedure ' ~ signature ~ ' to role ' ~ config.sender_role,
          'sql': 'grant usage on procedure ' ~ signature ~ ' to role ' ~ config.sender_role}) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- for role in config.audit_reader_roles -%}
    {%- do dbt_atomic._validate_identifier(role, 'atomic_audit_reader_roles') -%}
    {%- for table in ['attempts', 'outcomes'] -%}
      {%- set relation = dbt_atomic.atomic_relation(table) -%}
      {%- do grants.append({'description': 'grant select on table ' ~ relation ~ ' to role ' ~ role,
          'sql': 'grant select on table ' ~ relation ~ ' to role ' ~ role}) -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(grants) }}
{% endmacro %}


{#- The tables the package owns. Columns are only ever added, never renamed. -#}
{% macro atomic_owned_tables() %}
  {{ return([
      {'name': 'attempts', 'columns': [
          'run_id varchar', 'invocation_id varchar', 'destination varchar', 'batch_id varchar',
          'attempt number', 'http_status number', 'latency_ms number', 'rows_in_batch number',
          'bytes_in_batch number', 'error varchar', 'attempted_at timestamp_ltz']},
      {'name': 'outcomes', 'columns': [
          'run_id varchar', 'invocation_id varchar', 'destination varchar', 'dedupe_key varchar',
          'user_id varchar', 'status varchar', 'reason varchar', 'batch_id varchar',
          'recorded_at timestamp_ltz']},
      {'name': 'token_cache', 'columns': [
          'cache_key varchar', 'access_token varchar', 'expires_at_epoch number',
          'lease_owner varchar', 'lease_until_epoch number', 'updated_at timestamp_ltz']},
      {'name': 'locks', 'columns': [
          'lock_key varchar', 'lease_owner varchar', 'lease_until_epoch number', 'updated_at timestamp_ltz']},
  ]) }}
{% endmacro %}


{#-
  After the plan: nobody but the owner may read the token cache, whatever
  future grants in the schema gave away; then say which secrets to set.
-#}
{% macro snowflake__atomic_setup_after(config) %}
  {%- set token_cache = dbt_atomic.atomic_relation('token_cache') -%}
  {%- set grants = run_query('show grants on table ' ~ token_cache) -%}
  {%- for row in grants.rows -%}
    {%- set privilege = row['privilege'] | upper -%}
    {%- set grantee = row['grantee_name'] -%}
    {%- if privilege != 'OWNERSHIP' and (row['granted_to'] | upper) == 'ROLE' -%}
      {%- do run_query('revoke ' ~ privilege ~ ' on table ' ~ token_cache ~ ' from role ' ~ adapter.quote(grantee)) -%}
      {{ log('atomic_setup: revoked ' ~ privilege ~ ' on the token cache from role ' ~ grantee, info=true) }}
    {%- endif -%}
  {%- endfor -%}
  {%- set secrets = dbt_atomic._destination_secrets(config) -%}
  {{ log('atomic_setup: secrets the procedures read (set each value once, outside dbt: see the README, "Secrets"):', info=true) }}
  {%- for secret in secrets -%}
    {{ log('  ' ~ secret.object ~ ' (' ~ secret.type ~ ', destination ' ~ secret.destination ~ ')', info=true) }}
  {%- endfor -%}
{% endmacro %}
