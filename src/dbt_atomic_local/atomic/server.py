"""Run the local Atomic with uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from dbt_atomic_local.atomic.app import create_app
from dbt_atomic_local.atomic.config import ConfigError, load_config


def serve(host: str, port: int, config_path: str | None = None) -> None:
    """Serve until interrupted. The access log stays off: webhook paths carry secrets."""
    try:
        config = load_config(config_path)
    except (OSError, ConfigError) as exc:
        print(f"local Atomic: cannot load the configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app, _ = create_app(config)
    print(
        f"local Atomic on http://{host}:{port} ({len(config.triggers)} trigger(s), "
        f"{len(config.clients)} client(s)); admin API at /_admin/",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        lifespan="off",
        server_header=False,
        date_header=False,
    )
