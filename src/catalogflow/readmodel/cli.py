"""`catalogflow projector` and `catalogflow read-model rebuild`."""

from __future__ import annotations

import argparse


def add_readmodel_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Registers the commands (filled in by the issue 11 work)."""
