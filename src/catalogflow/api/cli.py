"""`catalogflow api` (serve) and `catalogflow api token` (make a token and its settings entry)."""

from __future__ import annotations

import argparse


def add_api_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers the commands (filled in by the issue 11 work)."""
