"""The local Snowflake: fakesnow plus network rules, secrets, integrations, procedures, alerts, tasks, grants."""
