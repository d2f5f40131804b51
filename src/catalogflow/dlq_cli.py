"""`catalogflow dlq list|show|replay`: the dead letters, from the read side."""

from __future__ import annotations

import argparse


def add_dlq_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers the commands (filled in by the issue 11 work)."""
