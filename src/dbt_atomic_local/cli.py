"""`atomic-local`: start the local Snowflake and the local Atomic."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="atomic-local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    snow = sub.add_parser("snowflake", help="run the local Snowflake server")
    snow.add_argument("--host", default="127.0.0.1")
    snow.add_argument("--port", type=int, default=8085)

    atomic = sub.add_parser("atomic", help="run the local Atomic emulator")
    atomic.add_argument("--host", default="127.0.0.1")
    atomic.add_argument("--port", type=int, default=8086)
    atomic.add_argument("--config", help="JSON configuration file")

    args = parser.parse_args(argv)
    if args.command == "snowflake":
        from dbt_atomic_local.snowflake.server import serve

        serve(host=args.host, port=args.port)
    elif args.command == "atomic":
        from dbt_atomic_local.atomic.server import serve

        serve(host=args.host, port=args.port, config_path=args.config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
