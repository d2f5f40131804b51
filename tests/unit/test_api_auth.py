"""Tokens: salted hashes in the settings, bearer checks, role order."""

from __future__ import annotations

import json
from typing import Annotated

import pytest
import sqlalchemy as sa
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.settings import Settings
from fastapi import FastAPI
from fastapi.testclient import TestClient

from catalogflow.api.app import create_app
from catalogflow.api.auth import (
    Authenticator,
    Caller,
    entry_line,
    hash_token,
    parse_tokens,
    require,
    verify,
)
from catalogflow.cli import main


def test_a_hash_is_salted_and_verifies_only_its_token() -> None:
    one, two = hash_token("secret-token"), hash_token("secret-token")
    assert one != two and "secret-token" not in one
    assert one.startswith("pbkdf2_sha256$")
    assert verify("secret-token", one) and verify("secret-token", two)
    assert not verify("secret-tokem", one)
    assert not verify("secret-token", "garbage")


def test_entries_parse_into_users_and_roles() -> None:
    text = f"{entry_line('ann', 'viewer', 'a')}, {entry_line('bob', 'admin', 'b')},"
    entries = parse_tokens(text)
    assert [(e.user, e.role) for e in entries] == [("ann", "viewer"), ("bob", "admin")]
    assert "pbkdf2" not in repr(entries)
    caller = Authenticator(entries).caller("b")
    assert caller == Caller("bob", "admin")
    assert Authenticator(entries).caller("c") is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("ann-raw-token-value", "not user:role:hash"),
        ("ann:root:{hash}", "role must be one of"),
        ("ann:viewer:raw-token-value", "not one `catalogflow api token` makes"),
    ],
)
def test_a_bad_entry_fails_at_start_naming_its_position_not_its_secret(
    entry: str, problem: str
) -> None:
    good = entry_line("zoe", "viewer", "z")
    bad = entry.format(hash=hash_token("x"))
    settings = Settings(api_tokens=f"{good},{bad}")
    with pytest.raises(ConfigError, match="entry 2") as caught:
        create_app(settings, sa.create_engine("sqlite://"))
    message = str(caught.value)
    assert problem in message
    assert "raw-token-value" not in message and bad.rpartition(":")[2] not in message


def test_roles_are_ordered() -> None:
    assert Caller("m", "moderator").may("editor")
    assert not Caller("e", "editor").may("moderator")
    assert Caller("a", "admin").may("admin")


def small_app() -> TestClient:
    app = FastAPI()
    app.state.authenticator = Authenticator(parse_tokens(entry_line("eve", "editor", "tok-e")))

    @app.get("/edit")
    def edit(caller: Annotated[Caller, require("editor")]) -> dict[str, str]:
        return {"user": caller.user, "role": caller.role}

    @app.get("/admin")
    def admin(caller: Annotated[Caller, require("admin")]) -> dict[str, str]:
        return {"user": caller.user}

    return TestClient(app)


def test_no_or_a_wrong_token_is_401_and_a_low_role_403() -> None:
    client = small_app()
    assert client.get("/edit").status_code == 401
    wrong = client.get("/edit", headers={"Authorization": "Bearer tok-x"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    basic = client.get("/edit", headers={"Authorization": "Basic dG9rLWU="})
    assert basic.status_code == 401
    ok = client.get("/edit", headers={"Authorization": "Bearer tok-e"})
    assert ok.json() == {"user": "eve", "role": "editor"}
    assert client.get("/admin", headers={"Authorization": "Bearer tok-e"}).status_code == 403


def test_api_token_prints_a_fresh_token_once_and_its_entry(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["api", "token", "--user", "ann", "--role", "moderator", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    main(["api", "token", "--user", "ann", "--role", "moderator", "--json"])
    second = json.loads(capsys.readouterr().out)
    assert first["token"] != second["token"]
    (entry,) = parse_tokens(first["entry"])
    assert (entry.user, entry.role) == ("ann", "moderator")
    assert first["token"] not in first["entry"] and verify(first["token"], entry.hash)
