{#-
  What atomic_setup derives from the configured destinations: the settings
  the procedures run with, the secrets they read, and the hosts they may reach.
-#}

{% macro _webhook_signing_defaults() %}
  {{ return({
      'algorithm': 'sha256',
      'digest': 'hex',
      'signature_header': 'x-signature',
      'signature_prefix': 'v1=',
      'timestamp_header': 'x-signature',
      'timestamp_prefix': 't=',
      'template': '[timestamp].[payload]',
  }) }}
{% endmacro %}


{#- The settings of one destination, as the handler reads them (no secret values, only aliases). -#}
{% macro _destination_settings(name, dest, config) %}
  {%- if dest.kind == 'webhook' -%}
    {%- set signing = dbt_atomic._webhook_signing_defaults() -%}
    {%- do signing.update(dest.get('signing') or {}) -%}
    {%- set signed = dest.get('signed', true) -%}
    {{ return({
        'kind': 'webhook',
        'url_secret': name ~ '_url',
        'signing_secret': (name ~ '_signing_secret') if signed else none,
        'signing': signing,
        'user_id_field': dest.get('user_id_field', 'targetUserId'),
    }) }}
  {%- else -%}
    {%- set api_url = dest.get('api_url') -%}
    {%- if not api_url -%}
      {%- if not config.customer_api_url or not config.environment_id -%}
        {{ exceptions.raise_compiler_error(
            "dbt_atomic: events destination '" ~ name ~ "' needs api_url, or the vars atomic_customer_api_url and atomic_environment_id") }}
      {%- endif -%}
      {%- set api_url = config.customer_api_url.rstrip('/') ~ '/v1/' ~ config.environment_id ~ '/analytics' -%}
    {%- endif -%}
    {{ return({
        'kind': 'events',
        'api_url': api_url,
        'oauth_url': dest.get('oauth_url', config.oauth_url),
        'credentials_secret': name ~ '_credentials',
        'event_name': dest.get('event_name'),
        'max_events_per_request': dest.get('max_events_per_request', config.max_events_per_request),
        'token_margin_seconds': dest.get('token_margin_seconds', config.token_margin_seconds),
    }) }}
  {%- endif -%}
{% endmacro %}


{#- The secrets the procedures read: alias, Snowflake object and type. -#}
{% macro _destination_secrets(config) %}
  {%- set secrets = [] -%}
  {%- for name, dest in config.destinations.items() | sort -%}
    {%- set settings = dbt_atomic._destination_settings(name, dest, config) -%}
    {%- for key, type in [('url_secret', 'generic_string'), ('signing_secret', 'generic_string'), ('credentials_secret', 'password')] -%}
      {%- if settings.get(key) -%}
        {%- do secrets.append({
            'alias': settings[key],
            'object': dbt_atomic.atomic_object_name(settings[key]),
            'type': type,
            'destination': name,
        }) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(secrets) }}
{% endmacro %}


{#- `host` or `host:port` as a network rule wants it: no port means 443. -#}
{% macro _egress_host(url, setting) %}
  {%- set match = modules.re.match('^(https?)://([A-Za-z0-9.-]+)(?::([0-9]+))?(?:[/?#].*)?$', url | string) -%}
  {%- if not match -%}
    {{ exceptions.raise_compiler_error("dbt_atomic: " ~ setting ~ " is not an http(s) URL: " ~ url) }}
  {%- endif -%}
  {%- set scheme, host, port = match.group(1), match.group(2).lower(), match.group(3) -%}
  {%- if port -%}
    {{ return(host ~ ':' ~ port) }}
  {%- elif scheme == 'http' -%}
    {{ return(host ~ ':80') }}
  {%- else -%}
    {{ return(host) }}
  {%- endif -%}
{% endmacro %}


{#-
  Every host the procedures may reach. A webhook trigger URL is a secret, so
  its host comes from the destination's `host` or from atomic_customer_api_url.
-#}
{% macro _egress_hosts(config) %}
  {%- set hosts = [] -%}
  {%- for name, dest in config.destinations.items() | sort -%}
    {%- if dest.kind == 'webhook' -%}
      {%- set url = config.customer_api_url -%}
      {%- if dest.get('host') -%}
        {%- do hosts.append(dest.host) -%}
      {%- elif url -%}
        {%- do hosts.append(dbt_atomic._egress_host(url, 'atomic_customer_api_url')) -%}
      {%- else -%}
        {{ exceptions.raise_compiler_error(
            "dbt_atomic: webhook destination '" ~ name ~ "' needs host (e.g. <org>.customer-api.atomic.io), or the var atomic_customer_api_url") }}
      {%- endif -%}
    {%- else -%}
      {%- set settings = dbt_atomic._destination_settings(name, dest, config) -%}
      {%- do hosts.append(dbt_atomic._egress_host(settings.api_url, name ~ '.api_url')) -%}
      {%- do hosts.append(dbt_atomic._egress_host(settings.oauth_url, name ~ '.oauth_url')) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- for host in config.egress_hosts -%}
    {%- do hosts.append(host) -%}
  {%- endfor -%}
  {%- for host in hosts -%}
    {%- if not modules.re.match('^[A-Za-z0-9.-]+(:[0-9]+)?$', host) -%}
      {{ exceptions.raise_compiler_error("dbt_atomic: not a host or host:port for the network rule: " ~ host) }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(hosts | unique | sort | list) }}
{% endmacro %}


{#- A relation as the handler takes it: every part double-quoted, in its exact case. -#}
{% macro _exact_relation_name(relation) %}
  {%- set parts = [] -%}
  {%- for part, quoted in [(relation.database, relation.quote_policy.database),
                           (relation.schema, relation.quote_policy.schema),
                           (relation.identifier, relation.quote_policy.identifier)] -%}
    {%- set exact = part if quoted else part.upper() -%}
    {%- do parts.append('"' ~ exact.replace('"', '""') ~ '"') -%}
  {%- endfor -%}
  {{ return(parts | join('.')) }}
{% endmacro %}


{#- The JSON the procedures get as their `settings` default. -#}
{% macro atomic_settings_json(config) %}
  {%- set destinations = {} -%}
  {%- for name, dest in config.destinations.items() -%}
    {%- do destinations.update({name: dbt_atomic._destination_settings(name, dest, config)}) -%}
  {%- endfor -%}
  {%- set settings = {
      'package_version': dbt_atomic.atomic_package_version(),
      'tables': {
          'attempts': dbt_atomic._exact_relation_name(dbt_atomic.atomic_relation('attempts')),
          'outcomes': dbt_atomic._exact_relation_name(dbt_atomic.atomic_relation('outcomes')),
          'token_cache': dbt_atomic._exact_relation_name(dbt_atomic.atomic_relation('token_cache')),
          'locks': dbt_atomic._exact_relation_name(dbt_atomic.atomic_relation('locks')),
      },
      'http': {
          'timeout_seconds': config.http_timeout_seconds,
          'max_attempts': config.http_max_attempts,
          'backoff_base_seconds': config.backoff_base_seconds,
          'backoff_max_seconds': config.backoff_max_seconds,
          'concurrency': config.http_concurrency,
      },
      'batch': {'max_rows': config.batch_max_rows, 'max_bytes': config.batch_max_bytes},
      'destinations': destinations,
  } -%}
  {{ return(tojson(settings, sort_keys=true)) }}
{% endmacro %}


{% macro atomic_package_version() %}
  {{ return('0.1.0') }}
{% endmacro %}
