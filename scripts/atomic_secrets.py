"""Set the values of the secrets that dbt_atomic's procedures read.

dbt writes every statement it runs to logs/dbt.log and compiled SQL to target/,
so a secret value must never pass through dbt. `atomic_setup` creates each
secret with a placeholder; this command then sets its value over a direct
connection, using the connection settings of your dbt profile. The value is
read from an environment variable or typed at a hidden prompt, bound as a
parameter, and never printed.

    python scripts/atomic_secrets.py --project-dir . set DB.SCHEMA.ATOMIC_LOW_BALANCE_URL --from-env ATOMIC_URL
    python scripts/atomic_secrets.py set DB.SCHEMA.ATOMIC_EVENTS_CREDENTIALS \\
        --username-env ATOMIC_CLIENT_ID --password-env ATOMIC_CLIENT_SECRET

Alternatively an administrator runs `ALTER SECRET ... SET SECRET_STRING = '...'`
in a Snowsight worksheet.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path

import yaml

SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")


class SecretsError(Exception):
    """A problem the user can fix; printed without a traceback."""


def read_value(env_name: str | None, prompt: str) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise SecretsError(f"environment variable {env_name} is not set or empty")
        return value
    if not sys.stdin.isatty():
        value = sys.stdin.readline().rstrip("\n")
    else:
        value = getpass.getpass(prompt)
    if not value:
        raise SecretsError("no value given")
    return value


def open_connection(project_dir: Path, profiles_dir: Path | None, target: str | None):
    """A Snowflake connection from the dbt profile, through dbt-snowflake's own connect code."""
    from dbt.adapters.contracts.connection import Connection
    from dbt.adapters.snowflake.connections import SnowflakeConnectionManager
    from dbt.config.profile import Profile, read_profile
    from dbt.config.renderer import ProfileRenderer
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context

    project_file = project_dir / "dbt_project.yml"
    if not project_file.is_file():
        raise SecretsError(f"no dbt_project.yml in {project_dir}")
    profile_name = yaml.safe_load(project_file.read_text()).get("profile")
    if profiles_dir is None and os.environ.get("DBT_PROFILES_DIR"):
        profiles_dir = Path(os.environ["DBT_PROFILES_DIR"])
    if profiles_dir is None or not (profiles_dir / "profiles.yml").is_file():
        profiles_dir = project_dir if (project_dir / "profiles.yml").is_file() else Path.home() / ".dbt"
    set_from_args(argparse.Namespace(), None)
    set_invocation_context(os.environ)  # env_var() in profiles.yml reads the environment through it
    profile = Profile.from_raw_profiles(
        read_profile(str(profiles_dir)), profile_name, ProfileRenderer({}), target_override=target
    )
    if profile.credentials.type != "snowflake":
        raise SecretsError(f"target {profile.target_name} is not a Snowflake target")
    connection = Connection(type="snowflake", name="atomic_secrets", credentials=profile.credentials)
    return SnowflakeConnectionManager.open(connection).handle


def set_secret(handle, name: str, value: str | None, username: str | None, password: str | None) -> None:
    if not SECRET_NAME.match(name):
        raise SecretsError(f"not a secret name: {name!r} (expected database.schema.name)")
    cursor = handle.cursor()
    try:
        if value is not None:
            cursor.execute(f"alter secret {name} set secret_string = %s", (value,))
        else:
            cursor.execute(f"alter secret {name} set username = %s password = %s", (username, password))
    finally:
        cursor.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--profiles-dir", type=Path)
    parser.add_argument("--target")
    sub = parser.add_subparsers(dest="command", required=True)
    set_cmd = sub.add_parser("set", help="set a secret's value")
    set_cmd.add_argument("name", help="the secret, as atomic_setup lists it: database.schema.name")
    set_cmd.add_argument("--from-env", help="read the value (GENERIC_STRING) from this environment variable")
    set_cmd.add_argument("--username-env", help="PASSWORD secret: the client id from this environment variable")
    set_cmd.add_argument("--password-env", help="PASSWORD secret: the client secret from this environment variable")
    set_cmd.add_argument("--password", action="store_true", help="PASSWORD secret, values typed at prompts")
    args = parser.parse_args(argv)

    try:
        if args.username_env or args.password_env or args.password:
            username = read_value(args.username_env, "client id: ")
            password = read_value(args.password_env, "client secret (hidden): ")
            value = None
        else:
            value = read_value(args.from_env, "secret value (hidden): ")
            username = password = None
        handle = open_connection(args.project_dir, args.profiles_dir, args.target)
        try:
            set_secret(handle, args.name, value, username, password)
        finally:
            handle.close()
    except SecretsError as exc:
        print(f"atomic_secrets: {exc}", file=sys.stderr)
        return 2
    print(f"atomic_secrets: {args.name} set")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
