"""`catalogflow api` (serve) and `catalogflow api token` (make a token and its settings entry)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import cast

from catalogflow.api.auth import ROLES, ApiRole, entry_line, new_token
from catalogflow.streams.settings import Settings

log = logging.getLogger("catalogflow.api")


def add_api_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``api`` serves; ``api token`` prints a fresh token and its ``api_tokens`` entry."""
    api = commands.add_parser(
        "api", help="serve the HTTP API and the web console over the read model"
    )
    api.add_argument("--host", help="address to listen on (default: the api_host setting)")
    api.add_argument("--port", type=int, help="port (default: the api_port setting)")
    api.set_defaults(run=_serve)
    sub = api.add_subparsers(title="api commands", metavar="COMMAND")
    token = sub.add_parser("token", help="make an API token and its api_tokens entry")
    token.add_argument("--user", required=True, help="who the token is for")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--json", action="store_true", help="print {user, role, token, entry}")
    token.set_defaults(run=_token)


def _serve(args: argparse.Namespace) -> int:
    from catalogflow.api.app import create_app
    from catalogflow.api.server import serve

    settings = Settings.load(args.config)
    app = create_app(settings)  # bad api_tokens: a ConfigError here, exit 2
    host = args.host or settings.api_host
    port = args.port or settings.api_port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # uvicorn would say "running on" too: its lifecycle lines below warning, ours once.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    log.info(
        "catalogflow API and web console on http://%s:%d (read model %s)",
        host,
        port,
        _safe(settings),
    )
    serve(app, host, port)
    return 0


def _token(args: argparse.Namespace) -> int:
    token = new_token()
    role = cast(ApiRole, args.role)
    entry = entry_line(args.user, role, token)
    if args.json:
        print(json.dumps({"user": args.user, "role": role, "token": token, "entry": entry}))
    else:
        print(f"token (shown once; give it to {args.user}): {token}")
        print(f"api_tokens entry (add it to the settings): {entry}")
    return 0


def _safe(settings: Settings) -> str:
    """The read model's URL without a password."""
    from sqlalchemy.engine import make_url

    return make_url(settings.read_model).render_as_string(hide_password=True)
