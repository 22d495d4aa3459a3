{#-
  The package's configuration, in one place.

  Every setting is a project var named `atomic_<key>`; the defaults live here,
  not in the package's dbt_project.yml, because vars set there are invisible to
  the root project's on-run-end hooks.
-#}
{% macro atomic_config() %}
  {%- set defaults = {
      'database': target.database,
      'schema': target.schema ~ '_atomic',
      'object_prefix': 'atomic_',
      'customer_api_url': none,
      'environment_id': none,
      'oauth_url': 'https://master-atomic-io.auth.us-east-1.amazoncognito.com/oauth2/token',
      'destinations': {},
      'egress_hosts': [],
      'batch_max_rows': 500,
      'batch_max_bytes': 1000000,
      'http_timeout_seconds': 30,
      'http_max_attempts': 5,
      'http_concurrency': 4,
      'backoff_base_seconds': 1,
      'backoff_max_seconds': 60,
      'token_margin_seconds': 300,
      'max_events_per_request': 100,
      'send_enabled': true,
      'send_targets': none,
      'on_failure': 'error',
      'sender_role': none,
      'audit_reader_roles': [],
      'runtime_version': '3.12',
  } -%}
  {%- set config = {} -%}
  {%- for key, default in defaults.items() -%}
    {%- do config.update({key: var('atomic_' ~ key, default)}) -%}
  {%- endfor -%}
  {%- do dbt_atomic._validate_config(config) -%}
  {{ return(config) }}
{% endmacro %}


{#- Names that end up in SQL unquoted must be plain identifiers. -#}
{% macro _validate_identifier(value, setting) %}
  {%- if value is none or not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', value | string) -%}
    {{ exceptions.raise_compiler_error(
        "dbt_atomic: " ~ setting ~ " must be a plain identifier (letters, digits and _, not starting with a digit), got: " ~ (value | string)) }}
  {%- endif -%}
{% endmacro %}


{% macro _validate_config(config) %}
  {%- do dbt_atomic._validate_identifier(config.database, 'atomic_database') -%}
  {%- do dbt_atomic._validate_identifier(config.schema, 'atomic_schema') -%}
  {%- do dbt_atomic._validate_identifier(config.object_prefix, 'atomic_object_prefix') -%}
  {%- if config.on_failure not in ['error', 'warn'] -%}
    {{ exceptions.raise_compiler_error("dbt_atomic: atomic_on_failure must be 'error' or 'warn', got: " ~ config.on_failure) }}
  {%- endif -%}
  {%- if config.destinations is not mapping -%}
    {{ exceptions.raise_compiler_error("dbt_atomic: atomic_destinations must be a mapping of destination name to its settings") }}
  {%- endif -%}
  {%- for name, dest in config.destinations.items() -%}
    {%- do dbt_atomic._validate_identifier(name, 'the destination name') -%}
    {%- if dest is not mapping or dest.get('kind') not in ['webhook', 'events'] -%}
      {{ exceptions.raise_compiler_error("dbt_atomic: destination '" ~ name ~ "' needs kind: webhook or kind: events") }}
    {%- endif -%}
  {%- endfor -%}
  {%- for key in ['batch_max_rows', 'batch_max_bytes', 'http_max_attempts', 'http_concurrency', 'max_events_per_request'] -%}
    {%- if config[key] is not number or config[key] < 1 -%}
      {{ exceptions.raise_compiler_error("dbt_atomic: atomic_" ~ key ~ " must be a positive number, got: " ~ config[key]) }}
    {%- endif -%}
  {%- endfor -%}
{% endmacro %}


{#- A relation in the package's own schema, rendered with the project's quoting policy. -#}
{% macro atomic_relation(name, type='table') %}
  {%- set config = dbt_atomic.atomic_config() -%}
  {{ return(api.Relation.create(database=config.database, schema=config.schema,
                                identifier=config.object_prefix ~ name, type=type)) }}
{% endmacro %}


{#- The fully qualified name of an object in the package's schema (procedures, secrets, rules). -#}
{% macro atomic_object_name(name) %}
  {%- set config = dbt_atomic.atomic_config() -%}
  {{ return(config.database ~ '.' ~ config.schema ~ '.' ~ config.object_prefix ~ name) }}
{% endmacro %}


{#- A Snowflake string literal: backslashes and quotes escaped. -#}
{% macro atomic_string_literal(value) %}
  {{- return("'" ~ (value | string).replace('\\', '\\\\').replace("'", "''") ~ "'") -}}
{% endmacro %}
