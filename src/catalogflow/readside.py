"""Where the read commands read: the API when one answers, else the read model directly.

One seam (:func:`read_side`), so every read command (``workflow status|results``,
``history``, ``dlq``) is written once against ``ReadSide``. ``--api URL`` insists on an
API; ``--read-model`` skips the probe and opens the database of ``read_model_url``
(which a projector must be feeding).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from catalogflow.apiclient import ApiReadSide, ApiUnavailable, ExportFormat
from catalogflow.readmodel.export import write_csv, write_jsonl
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.store import open_read_model
from catalogflow.readmodel.views import ReadSide, TaskFilter
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings


def add_read_side_options(parser: argparse.ArgumentParser) -> None:
    """``--api URL`` / ``--read-model``, for every command that reads."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--api",
        metavar="URL",
        default=None,
        help="read from the API at URL (default: the settings' API when it answers, "
        "else the read model directly)",
    )
    where.add_argument(
        "--read-model",
        dest="read_model",
        action="store_true",
        help="read the read model's database directly, without asking an API",
    )


def read_side(settings: Settings, *, api: str | None = None, db: bool = False) -> ReadSide:
    """The API at ``api`` (must answer), the read model (``db``), or whichever is there."""
    if db:
        return direct(settings)
    client = ApiReadSide.for_settings(settings, api)
    if client.healthy():
        return client
    client.close()
    if api is not None:
        raise ApiUnavailable(f"no catalogflow API answers at {client.url}")
    return direct(settings)


def for_args(settings: Settings, args: argparse.Namespace) -> ReadSide:
    return read_side(settings, api=args.api, db=args.read_model)


def direct(settings: Settings) -> ReadSide:
    """The read model's database, migrated to the newest schema."""
    return ReadModelQueries(open_read_model(settings))


def where(side: ReadSide) -> str:
    """Where a read side reads, for messages."""
    if isinstance(side, ApiReadSide):
        return f"the API at {side.url}"
    return "the read model"


def export(
    side: ReadSide, run_id: str, filters: TaskFilter, fmt: ExportFormat, out: Path
) -> int | None:
    """Write the run's filtered tasks to ``out`` in the one export format: the API's
    export route, or the same writers over the database. Returns the tasks written
    (``None`` from the API, which streams bytes and does not count)."""
    if isinstance(side, ApiReadSide):
        side.run(run_id)  # a NotFound before an empty file
        side.export(run_id, filters, fmt, out)
        return None
    side.run(run_id)
    writer = write_csv if fmt == "csv" else write_jsonl
    with _open(out) as handle:
        return writer(side.all_tasks(run_id, filters), handle)


def _open(path: Path) -> TextIO:
    try:
        return path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise CatalogflowError(f"cannot write {path}: {exc.strerror}") from exc
