"""Local stand-ins for Snowflake and Atomic: run the package offline."""
