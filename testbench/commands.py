"""The test bench's commands, which ``catalogflow`` offers next to its own.

``catalogflow.cli`` imports this module, and nothing else of the bench: the bench needs
the product, the product never needs the bench.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

from catalogflow.streams.settings import Settings
from catalogflow.testbench.demo import add_demo_command
from catalogflow.testbench.llm.simulator import (
    SimulatorConfig,
    SimulatorThread,
    add_simulator_commands,
)


def add_testbench_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``catalogflow demo`` and ``catalogflow simulator llm|magento``."""
    add_demo_command(commands)
    add_simulator_commands(commands)


@contextlib.contextmanager
def simulated_llm(settings: Settings) -> Iterator[Settings]:
    """``settings`` pointed at an in-process LLM simulator while the block runs.

    ``workflow dry-run --simulator`` receives this from the CLI as ``args.simulated_llm``.
    """
    with SimulatorThread(SimulatorConfig()) as sim:
        print(
            f"using the LLM simulator at {sim.url} (test infrastructure, not a model)",
            file=sys.stderr,
        )
        yield settings.replace(llm_base_url=f"{sim.url}/v1", llm_kind="compatible")
