"""``catalogflow model``: help, and status/stop on a data directory with no server
(neither builds anything); the real server is tests/integration/test_real_model.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalogflow.cli import main


def test_model_status_and_stop_without_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["model", "status", "--data-dir", str(tmp_path), "--json"]) == 3
    assert json.loads(capsys.readouterr().out) == {
        "running": False,
        "pid": None,
        "base_url": None,
    }
    assert main(["model", "stop", "--data-dir", str(tmp_path)]) == 0
    assert "no model server was running" in capsys.readouterr().out


def test_model_commands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["model", "start", "--help"])
    assert done.value.code == 0
    assert "--data-dir" in capsys.readouterr().out
