import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.records import ProductSnapshot
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import changelog_topic

from catalogflow import workflow_cli
from catalogflow.cli import _parser, main
from catalogflow.workflow_cli import (
    add_workflow_commands,
    count_matches,
)

EXAMPLES = Path(__file__).parents[2] / "examples"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="catalogflow")
    parser.add_argument("--config", type=Path)
    add_workflow_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_valid_files_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    good = EXAMPLES / "dry-cat-food.yaml"
    other = EXAMPLES / "german-descriptions-continuous.yaml"
    assert run(["workflow", "validate", "--no-count", str(good), str(other)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{good}: ok — dry-cat-food (one_time), 3 actions: extract → enrich → translate",
        f"{other}: ok — german-descriptions (continuous), 1 action: translate-description",
    ]


def test_an_invalid_file_exits_2_and_lists_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = EXAMPLES / "dry-cat-food.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\nmode: one_time\n"
        "trigger: {all: [{field: status, operator: equal, value: enabled}]}\n"
        "actions: [{id: a, type: translatoin}]\n"
    )
    assert run(["workflow", "validate", "--no-count", str(good), str(bad)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{good}: ok — dry-cat-food")
    assert out[1].startswith(f"{bad}: trigger.all[0].operator: unknown operator 'equal'; allowed:")
    assert out[2].startswith(f"{bad}: actions[0].type: unknown action type 'translatoin'; known:")
    assert len(out) == 3


def test_missing_file_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["workflow", "validate", "--no-count", str(tmp_path / "gone.yaml")]) == 2
    assert "gone.yaml: cannot read the file" in capsys.readouterr().out


def test_count_without_broker_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on localhost: nothing answers, so the probe fails fast.
    monkeypatch.setenv("CATALOGFLOW_BROKER", "127.0.0.1:9")
    monkeypatch.setattr(workflow_cli, "PROBE_TIMEOUT_S", 0.5)
    code = run(["workflow", "validate", "--count", str(EXAMPLES / "dry-cat-food.yaml")])
    assert code == 0
    assert "live count: skipped (no broker at 127.0.0.1:9)" in capsys.readouterr().out


def test_count_matches_counts_live_products_per_definition() -> None:
    cats = parse_definition(
        "id: cats\nmode: one_time\nactions: [{id: a, type: noop}]\n"
        "trigger: {all: [{field: category, operator: equals, value: Pet Food/Cat}]}\n",
        "cats.yaml",
        ["noop"],
    )
    everything = parse_definition(
        "id: all\nmode: one_time\nactions: [{id: a, type: noop}]\n", "all.yaml", ["noop"]
    )

    def product(sku: str, category: str, deleted: bool = False) -> ProductSnapshot:
        return {
            "sku": sku,
            "deleted": deleted,
            "values": [],
            "categories": [category],
            "supplier": None,
            "status": None,
            "family": None,
            "version": 1,
            "last_event_id": "e",
            "updated_at": datetime(2025, 1, 2, tzinfo=UTC),
        }

    snapshots = [
        product("1", "Pet Food/Cat/Dry Cat Food"),
        product("2", "Pet Food/Dog"),
        product("3", "Pet Food/Cat", deleted=True),
    ]
    seen: list[int] = []
    assert count_matches([cats, everything], snapshots, progress=seen.append) == (2, [1, 2])
    assert seen == []


def test_a_table_is_read_from_fausts_changelog_or_from_its_own_topic() -> None:
    settings = Settings.load(environ={})
    assert changelog_topic(settings, "products") == "catalogflow-products-changelog"
    assert changelog_topic(settings, "moderation") == "catalogflow.moderation"


# --------------------------------------------------------------------------- the run commands
# The read commands (status, results, list, show, run --wait, retry-failed) read the
# read side: their tests are in test_readside_cli.py, over a fake ReadSide.

COMMANDS = (
    "validate",
    "apply",
    "run",
    "pause",
    "resume",
    "stop",
    "retry-failed",
    "status",
    "results",
    "list",
    "show",
    "dry-run",
    "estimate",
)


def cli(argv: list[str]) -> int:
    return main(argv)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_a_one_line_description(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["workflow", command, "--help"])
    assert exit_.value.code == 0
    usage, _, rest = capsys.readouterr().out.partition("\n\n")
    assert usage.startswith(f"usage: catalogflow workflow {command} ")
    description = rest.split("\n\n")[0]
    assert "\n" not in description and description.endswith(".")


def test_workflow_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["workflow", "--help"])
    listed = [
        line.split()[0]
        for line in capsys.readouterr().out.splitlines()
        if line[:4] == " " * 4 and line[4:5] != " "  # not a wrapped summary
    ]
    assert listed == list(COMMANDS)


def test_apply_of_an_invalid_file_exits_2_before_any_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nmode: one_time\nactions: [{id: a, type: plugin_type}]\n")
    assert cli(["workflow", "apply", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{bad}: actions[0].type: unknown action type 'plugin_type'")


def test_control_refuses_a_run_of_another_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["workflow", "pause", "dry-cat", "german.v1.0badcafe"]) == 2
    assert "run 'german.v1.0badcafe' is not a run of workflow 'dry-cat'" in capsys.readouterr().err
