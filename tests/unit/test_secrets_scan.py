"""The secrets scan of the fault suite (``testbench/secrets.py``) finds a secret in
every form a leak takes, names the secret and the place but never the value, and finds
nothing in clean output."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from catalogflow.testbench.secrets import files_under, scan

SECRETS = {"magento token": "mgt-4f9c2a7e1b", "llm key": "sk-test-8d3e5f7a9b1c"}


def test_a_secret_is_found_raw_json_escaped_and_base64_at_any_alignment() -> None:
    token = SECRETS["magento token"]
    places = {
        "raw": f"Authorization: Bearer {token}".encode(),
        "json": json.dumps({"error": f'said "{token}"'}).encode(),
        "basic": b"Basic " + base64.b64encode(f"admin:{token}".encode()),
        "basic-shifted": b"Basic " + base64.b64encode(f"adm:{token}".encode()),
        "urlsafe": base64.urlsafe_b64encode(f"xy{token}z".encode()),
    }
    leaks = scan(SECRETS, places.items())
    assert {(leak.secret, leak.where) for leak in leaks} == {
        ("magento token", where) for where in places
    }


def test_clean_output_and_short_placeholders_find_nothing() -> None:
    clean = [("log", b"worker ready; token *** redacted; api key unused")]
    assert scan({**SECRETS, "placeholder": "unused"}, clean) == []


def test_files_are_scanned_by_path(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker.log").write_text(f"leaked {SECRETS['llm key']}\n")
    (tmp_path / "export.csv").write_text("sku,name\nPF-1,Cat food\n")
    leaks = scan(SECRETS, files_under(tmp_path))
    assert [(leak.secret, Path(leak.where).name) for leak in leaks] == [("llm key", "worker.log")]
    assert all(SECRETS["llm key"] not in repr(leak) for leak in leaks)
