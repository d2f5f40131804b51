"""The web console without a browser: sign-in and signed sessions, CSRF on every
state-changing request, roles on pages and posts, the security headers, and pages
that carry no inline script. Over the fixture read model, with the API's fake
publisher (tests/unit/api_app.py); tests/integration/test_console_browser.py drives
the same pages in Chromium against a real pipeline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from catalogflow.api.auth import ApiRole
from catalogflow.console.headers import CONTENT_SECURITY_POLICY
from catalogflow.console.pages.moderation import SentDecisions
from catalogflow.console.session import COOKIE, CSRF_HEADER, Session, SessionCodec
from catalogflow.console.templating import HERE, environment
from catalogflow.console.worddiff import Piece, word_diff
from tests.unit.api_app import TOKENS, FakePublisher, api
from tests.unit.readmodel_rows import RUN, WORKFLOW, sku

PAGES = [
    "/",
    "/fragments/overview",
    f"/workflows/{WORKFLOW}",
    f"/workflows/{WORKFLOW}/fragments/chain",
    f"/workflows/{WORKFLOW}/results",
    f"/workflows/{WORKFLOW}/results?action=describe&confidence_below=0.5",
    "/moderation",
    f"/products/{sku(0)}",
]


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return api(tmp_path)


def client_of(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def signed_in(app: FastAPI, role: ApiRole) -> tuple[TestClient, str]:
    """A client with a session of ``role``, and the session's CSRF token."""
    client = client_of(app)
    page = client.get("/login")
    check = re.search(r'name="login_check" value="([^"]+)"', page.text)
    assert check, page.text
    answer = client.post(
        "/login", data={"token": TOKENS[role], "login_check": check[1], "next": "/moderation"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/moderation"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert csrf
    return client, csrf[1]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_asks_for_sign_in_first(app: FastAPI, path: str) -> None:
    answer = client_of(app).get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=%2F")


def test_signing_in_sets_a_signed_httponly_strict_cookie_without_the_token(app: FastAPI) -> None:
    client = client_of(app)
    page = client.get("/login")
    check = re.search(r'name="login_check" value="([^"]+)"', page.text)
    assert check
    wrong = client.post("/login", data={"token": "not-a-token", "login_check": check[1]})
    assert wrong.status_code == 401 and "That token is not valid." in wrong.text
    assert COOKIE not in wrong.headers.get("set-cookie", "")
    forged = client_of(app).post("/login", data={"token": TOKENS["admin"], "login_check": "x"})
    assert forged.status_code == 400  # login CSRF: the form's value must match its cookie
    page = client.get("/login")
    check = re.search(r'name="login_check" value="([^"]+)"', page.text)
    assert check
    answer = client.post(
        "/login",
        data={"token": TOKENS["editor"], "login_check": check[1], "next": "//evil.example/"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKENS["editor"] not in cookie
    assert client.get("/").status_code == 200


def test_a_tampered_or_revoked_session_is_no_session(app: FastAPI) -> None:
    client, _ = signed_in(app, "viewer")
    value = client.cookies[COOKIE]
    codec: SessionCodec = app.state.session_codec
    for forged in (
        value[:-2] + ("AA" if not value.endswith("AA") else "BB"),
        SessionCodec(b"k" * 32).dump(Session("admin", "admin", "x")),  # another key
        codec.dump(Session("mallory", "admin", "x")),  # no such api_tokens entry
        codec.dump(Session("viewer", "admin", "x")),  # not the entry's role
    ):
        client.cookies.clear()
        client.cookies.set(COOKIE, forged)
        assert client.get("/").status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE, value)
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_with_the_security_headers(app: FastAPI, path: str) -> None:
    client, _ = signed_in(app, "viewer")
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_the_api_keeps_its_own_answers(app: FastAPI) -> None:
    answer = client_of(app).get("/api/health")
    assert "content-security-policy" not in answer.headers
    unknown = client_of(app).get("/api/runs/nope", headers={"Authorization": "Bearer x"})
    assert unknown.headers["content-type"].startswith("application/json")


def test_a_viewer_sees_no_run_or_decision_buttons(app: FastAPI) -> None:
    viewer, _ = signed_in(app, "viewer")
    admin, _ = signed_in(app, "admin")
    for path in (f"/workflows/{WORKFLOW}", "/moderation"):
        page = viewer.get(path).text
        assert "data-decision" not in page and 'data-action="run"' not in page
        assert "batch-approve" not in page and "dry-run" not in page
    assert "data-decision" in admin.get("/moderation").text
    assert "batch-approve" in admin.get("/moderation").text


def test_posts_need_the_csrf_token_and_the_role(app: FastAPI) -> None:
    publisher: FakePublisher = app.state.publisher
    url = "/moderation/item-low/decide"
    viewer, viewer_csrf = signed_in(app, "viewer")
    refused = viewer.post(url, data={"decision": "APPROVE", "csrf_token": viewer_csrf})
    assert refused.status_code == 403 and "needs editor" in refused.text
    editor, editor_csrf = signed_in(app, "editor")
    missing = editor.post(url, data={"decision": "APPROVE"})
    assert missing.status_code == 403 and "CSRF token" in missing.text
    wrong = editor.post(url, data={"decision": "APPROVE", "csrf_token": viewer_csrf})
    assert wrong.status_code == 403
    assert not publisher.calls
    sent = editor.post(
        url, data={"decision": "APPROVE"}, headers={CSRF_HEADER: editor_csrf, "HX-Request": "true"}
    )
    assert sent.status_code == 200 and "APPROVE sent by editor" in sent.text
    [(kind, (decision,))] = publisher.calls
    assert kind == "decide" and decision["actor"] == {"id": "editor", "role": "EDITOR"}
    again = editor.post(url, data={"decision": "REJECT", "csrf_token": editor_csrf})
    assert again.status_code == 409  # sent from this console already: never twice
    assert "REJECT" not in str(publisher.calls)
    assert "APPROVE sent by editor" in editor.get("/moderation").text


def test_moderators_decide_as_moderators_and_runs_need_an_admin(app: FastAPI) -> None:
    publisher: FakePublisher = app.state.publisher
    moderator, csrf = signed_in(app, "moderator")
    answer = moderator.post(
        "/moderation/item-check/decide",
        data={"decision": "EDIT", "field": "description", "value": "Tuna", "csrf_token": csrf},
    )
    assert answer.status_code == 303
    [(_, (decision,))] = publisher.calls
    assert decision["actor"]["role"] == "MODERATOR" and decision["edited_value"] == "Tuna"
    refused = moderator.post(f"/workflows/{WORKFLOW}/run", data={"csrf_token": csrf})
    assert refused.status_code == 403
    admin, admin_csrf = signed_in(app, "admin")
    started = admin.post(f"/workflows/{WORKFLOW}/run", data={"csrf_token": admin_csrf})
    assert started.status_code == 303 and publisher.calls[-1][0] == "run"
    paused = admin.post(f"/runs/{RUN}/pause", data={"csrf_token": admin_csrf})
    assert paused.status_code == 303 and publisher.calls[-1][1][2] == "PAUSE"
    assert admin.post(f"/runs/{RUN}/explode", data={"csrf_token": admin_csrf}).status_code == 404


def test_batch_decides_each_pending_item_of_the_filter_once(app: FastAPI) -> None:
    publisher: FakePublisher = app.state.publisher
    editor, csrf = signed_in(app, "editor")
    one = editor.post(
        "/moderation/item-low/decide", data={"decision": "REJECT", "csrf_token": csrf}
    )
    assert one.status_code == 303
    batch = editor.post("/moderation/batch", data={"decision": "APPROVE", "csrf_token": csrf})
    assert batch.status_code == 303
    decided = [(c[1][0]["item_id"], c[1][0]["decision"]) for c in publisher.calls]
    assert decided == [("item-low", "REJECT"), ("item-check", "APPROVE"), ("item-late", "APPROVE")]
    bad = editor.post("/moderation/batch", data={"decision": "EDIT", "csrf_token": csrf})
    assert bad.status_code == 400 and "APPROVE or REJECT" in bad.text


def test_bad_filters_and_unknown_things_are_html_pages_naming_them(app: FastAPI) -> None:
    viewer, _ = signed_in(app, "viewer")
    bad = viewer.get(f"/workflows/{WORKFLOW}/results", params={"confidence_below": "lots"})
    assert bad.status_code == 400 and "confidence_below" in bad.text
    assert bad.headers["content-type"].startswith("text/html")
    missing = viewer.get("/workflows/no-such-workflow")
    assert missing.status_code == 404 and "no-such-workflow" in missing.text


def test_exports_are_the_apis_files(app: FastAPI) -> None:
    viewer, _ = signed_in(app, "viewer")
    csv = viewer.get(f"/runs/{RUN}/export.csv", params={"q": "", "status": "ERROR"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert len(csv.text.splitlines()) > 1
    jsonl = viewer.get(f"/runs/{RUN}/export.jsonl")
    assert jsonl.headers["content-type"] == "application/x-ndjson"


def test_templates_and_assets_carry_no_inline_script_or_style() -> None:
    for path in sorted((HERE / "templates").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
        assert not re.search(r"\son[a-z]+\s*=", text), path.name  # no event handler attributes
        assert " style=" not in text and "<style" not in text, path.name
        assert "javascript:" not in text and "|safe" not in text, path.name
        assert "http://" not in text and "https://" not in text, path.name  # no CDN
    assert environment.autoescape is True


def test_text_from_products_and_models_is_escaped() -> None:
    payload = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    shown = environment.from_string("<p>{{ v|value }}</p>").render(v=payload)
    assert "<script>" not in shown and "<img" not in shown and "&lt;script&gt;" in shown


def test_word_diff_marks_added_and_removed_words() -> None:
    pieces = word_diff("Dry food with chicken", "Dry cat food with real chicken")
    assert Piece("added", " cat") in pieces
    assert "".join(p.text for p in pieces if p.kind != "removed") == (
        "Dry cat food with real chicken"
    )
    assert word_diff("", "new text") == [Piece("added", "new text")]
    assert [p.kind for p in word_diff("a b", "a c")] == ["same", "removed", "added"]


def test_the_assets_are_served_from_the_package(app: FastAPI) -> None:
    client = client_of(app)
    for path, kind in (
        ("/static/htmx-2.0.11.min.js", "javascript"),
        ("/static/console.js", "javascript"),
        ("/static/console.css", "text/css"),
    ):
        answer = client.get(path)
        assert answer.status_code == 200 and kind in answer.headers["content-type"], path


def test_an_editors_approval_leaves_a_second_approval_item_to_a_moderator() -> None:
    sent = SentDecisions()
    editor = Session("ed", "editor", "x")
    sent.add("item-1", "APPROVE", editor)
    assert sent.blocking("item-1", second_approval=True, role="editor") is not None
    assert sent.blocking("item-1", second_approval=True, role="moderator") is None
    assert sent.blocking("item-1", second_approval=False, role="moderator") is not None
    sent.add("item-1", "APPROVE", Session("mo", "moderator", "y"))
    assert sent.blocking("item-1", second_approval=True, role="admin") is not None
    sent.add("item-2", "REJECT", editor)
    assert sent.blocking("item-2", second_approval=True, role="moderator") is not None
    assert sent.blocking("item-3", second_approval=False, role="editor") is None
