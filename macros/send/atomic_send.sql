{#-
  Sends the eligible users of one or more models to their Atomic destinations.

  One macro for the three ways to run it:
    - a model post-hook:  post_hook="{{ dbt_atomic.atomic_send() }}"
    - on-run-end:         on-run-end: ["{{ dbt_atomic.atomic_send() }}"]
      (every model with `meta: atomic` that ran successfully and whose tests passed,
      except those that send from their own post-hook)
    - run-operation:      dbt run-operation atomic_send --args '{models: [low_balance_users]}'

  The procedure reads the rows itself; no row passes through dbt.
  Returns '' so that, as a hook, dbt has no SQL of its own to run.
-#}
{% macro atomic_send(models=none, destination=none) %}
  {{ return(adapter.dispatch('atomic_send', 'dbt_atomic')(models, destination)) }}
{% endmacro %}


{% macro default__atomic_send(models, destination) %}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set config = dbt_atomic.atomic_config() -%}
  {%- set command = flags.WHICH -%}
  {%- set from_operation = command == 'run-operation' -%}

  {%- if not from_operation and command not in ['run', 'build', 'retry'] -%}
    {{ return('') }}
  {%- endif -%}
  {%- if not config.send_enabled -%}
    {{ log('dbt_atomic: sending is switched off (atomic_send_enabled: false)', info=true) }}
    {{ return('') }}
  {%- endif -%}
  {%- if config.send_targets is not none and target.name not in config.send_targets -%}
    {{ log('dbt_atomic: not sending from target ' ~ target.name ~ ' (atomic_send_targets: ' ~ config.send_targets | join(', ') ~ ')', info=true) }}
    {{ return('') }}
  {%- endif -%}

  {%- if from_operation -%}
    {%- set nodes = dbt_atomic._atomic_nodes_by_name(models) -%}
  {%- elif results is defined -%}
    {%- set nodes = dbt_atomic._atomic_nodes_from_results(results) -%}
  {%- elif model is defined and model is not none -%}
    {%- set nodes = [model] -%}
  {%- else -%}
    {{ return('') }}
  {%- endif -%}

  {%- set failures = [] -%}
  {%- for node in nodes -%}
    {%- for delivery in dbt_atomic._atomic_deliveries(node) -%}
      {%- if destination is none or delivery.destination == destination -%}
        {%- set summary = dbt_atomic._atomic_send_delivery(node, delivery, config) -%}
        {%- if summary.get('status') != 'ok' -%}
          {%- do failures.append(node.name ~ ' -> ' ~ delivery.destination ~ ': ' ~ summary.get('failed', 0) ~ ' failed') -%}
        {%- endif -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}

  {%- if failures -%}
    {%- set message = 'dbt_atomic: delivery failed for ' ~ failures | join('; ') ~ '. Failed users are recorded in the audit and retried on the next run.' -%}
    {%- if config.on_failure == 'error' -%}
      {{ exceptions.raise_compiler_error(message) }}
    {%- else -%}
      {{ exceptions.warn(message) }}
    {%- endif -%}
  {%- endif -%}
  {{ return('') }}
{% endmacro %}


{#- A model's deliveries: `meta: {atomic: {...}}` or a list of them. -#}
{% macro _atomic_deliveries(node) %}
  {#- nodes are dicts in `graph` and objects in `results`: attribute access works on both -#}
  {%- set declared = none -%}
  {%- if node.config is defined and node.config.meta is defined and node.config.meta -%}
    {%- set declared = node.config.meta.get('atomic') -%}
  {%- endif -%}
  {%- if not declared and node.meta is defined and node.meta -%}
    {%- set declared = node.meta.get('atomic') -%}
  {%- endif -%}
  {%- if not declared -%}{{ return([]) }}{%- endif -%}
  {%- set deliveries = [declared] if declared is mapping else declared -%}
  {%- for delivery in deliveries -%}
    {%- if delivery is not mapping or not delivery.get('destination') or not delivery.get('user_id') -%}
      {{ exceptions.raise_compiler_error(
          "dbt_atomic: model " ~ node.name ~ ": meta.atomic needs at least destination and user_id, got: " ~ tojson(delivery)) }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(deliveries) }}
{% endmacro %}


{#- Models named in a run-operation, or every model that declares meta.atomic. -#}
{% macro _atomic_nodes_by_name(models) %}
  {%- set wanted = [models] if models is string else models -%}
  {%- set nodes = [] -%}
  {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
    {%- if (wanted is none and dbt_atomic._atomic_deliveries(node)) or (wanted is not none and node.name in wanted) -%}
      {%- do nodes.append(node) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if wanted is not none -%}
    {%- set found = nodes | map(attribute='name') | list -%}
    {%- for name in wanted if name not in found -%}
      {{ exceptions.raise_compiler_error("dbt_atomic: no model named " ~ name) }}
    {%- endfor -%}
  {%- endif -%}
  {{ return(nodes) }}
{% endmacro %}


{#-
  In on-run-end: the models with deliveries that ran successfully in this
  invocation, except those with a failing test (never notify from bad data).
-#}
{% macro _atomic_nodes_from_results(results) %}
  {%- set failed_tests_on = [] -%}
  {%- for result in results -%}
    {%- if result.node.resource_type == 'test' and result.status in ['fail', 'error'] -%}
      {%- for parent in result.node.depends_on.nodes -%}{%- do failed_tests_on.append(parent) -%}{%- endfor -%}
    {%- endif -%}
  {%- endfor -%}
  {%- set nodes = [] -%}
  {%- for result in results -%}
    {%- set node = result.node -%}
    {%- if node.resource_type == 'model' and dbt_atomic._atomic_deliveries(node) -%}
      {%- if result.status != 'success' -%}
        {{ log('dbt_atomic: not sending ' ~ node.name ~ ': the model did not build (' ~ result.status ~ ')', info=true) }}
      {%- elif node.unique_id in failed_tests_on -%}
        {{ log('dbt_atomic: not sending ' ~ node.name ~ ': a test on it failed', info=true) }}
      {%- elif dbt_atomic._atomic_sent_by_post_hook(node) -%}
        {#- its own post-hook sent it already -#}
      {%- else -%}
        {%- do nodes.append(node) -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(nodes) }}
{% endmacro %}


{% macro _atomic_sent_by_post_hook(node) %}
  {%- for hook in node.config.post_hook or [] -%}
    {%- if 'atomic_send' in (hook.sql if hook.sql is defined else hook | string) -%}
      {{ return(true) }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(false) }}
{% endmacro %}


{#- Resolves a configured column name to the model's actual column, case-insensitively. -#}
{% macro _atomic_column(columns, name, node, setting) %}
  {%- for column in columns -%}
    {%- if column.name == name or column.name | upper == name | upper -%}
      {{ return(column.name) }}
    {%- endif -%}
  {%- endfor -%}
  {{ exceptions.raise_compiler_error(
      "dbt_atomic: model " ~ node.name ~ ": " ~ setting ~ " column '" ~ name ~ "' not found; its columns are: "
      ~ columns | map(attribute='name') | join(', ')) }}
{% endmacro %}


{% macro _atomic_send_delivery(node, delivery, config) %}
  {%- if delivery.destination not in config.destinations -%}
    {{ exceptions.raise_compiler_error(
        "dbt_atomic: model " ~ node.name ~ " sends to destination '" ~ delivery.destination
        ~ "', which is not in atomic_destinations (" ~ config.destinations.keys() | join(', ') ~ ")") }}
  {%- endif -%}
  {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias or node.name) -%}
  {%- set columns = adapter.get_columns_in_relation(relation) -%}
  {%- if columns | length == 0 -%}
    {{ exceptions.raise_compiler_error("dbt_atomic: model " ~ node.name ~ " has no columns or does not exist yet: " ~ relation) }}
  {%- endif -%}
  {%- set user_id_column = dbt_atomic._atomic_column(columns, delivery.user_id, node, 'user_id') -%}
  {%- set payload_columns = none -%}
  {%- if delivery.get('payload') is not none -%}
    {%- set payload_columns = [] -%}
    {%- for name in delivery.payload -%}
      {%- do payload_columns.append(dbt_atomic._atomic_column(columns, name, node, 'payload')) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- set dedupe_columns = [] -%}
  {%- for name in delivery.get('dedupe_key') or [] -%}
    {%- do dedupe_columns.append(dbt_atomic._atomic_column(columns, name, node, 'dedupe_key')) -%}
  {%- endfor -%}
  {%- set optional = {} -%}
  {%- for key in ['event_name_column', 'properties_column'] -%}
    {%- if delivery.get(key) -%}
      {%- do optional.update({key: dbt_atomic._atomic_column(columns, delivery[key], node, key)}) -%}
    {%- else -%}
      {%- do optional.update({key: none}) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- set request = {
      'destination': delivery.destination,
      'source': dbt_atomic._exact_relation_name(relation),
      'user_id_column': user_id_column,
      'payload_columns': payload_columns,
      'dedupe_columns': dedupe_columns,
      'event_name': delivery.get('event_name'),
      'event_name_column': optional.event_name_column,
      'properties_column': optional.properties_column,
      'invocation_id': invocation_id,
  } -%}
  {#- The current settings go with the call, so a changed var takes effect without a new
      atomic_setup; the procedure's default only serves calls made by hand. -#}
  {%- set call -%}
call {{ dbt_atomic.atomic_object_name('send') }}(
    {{ dbt_atomic.atomic_string_literal(tojson(request, sort_keys=true)) }},
    {{ dbt_atomic.atomic_string_literal(dbt_atomic.atomic_settings_json(config)) }}
)
  {%- endset -%}
  {%- set result = run_query(call) -%}
  {%- set summary = fromjson(result.columns[0].values()[0]) -%}
  {{ log('dbt_atomic: ' ~ node.name ~ ' -> ' ~ delivery.destination ~ ': sent ' ~ summary.get('sent', 0)
         ~ ' in ' ~ summary.get('batches', 0) ~ ' batches, skipped ' ~ summary.get('skipped', 0)
         ~ ', invalid ' ~ summary.get('invalid', 0) ~ ', failed ' ~ summary.get('failed', 0)
         ~ ' (run ' ~ summary.get('run_id', '?') ~ ')', info=true) }}
  {{ return(summary) }}
{% endmacro %}
