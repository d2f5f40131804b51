"""`catalogflow history SKU`: everything that happened to one product, from the read side."""

from __future__ import annotations

import argparse


def add_history_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers the commands (filled in by the issue 11 work)."""
