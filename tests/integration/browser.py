"""Debian's Chromium, headless, driven by Playwright (its own browser is never
downloaded: ``executable_path`` is the system one, which deploy/local/install.sh
installs). A page records every dialog, console error and page error, so a test can
assert that no script of a product's or model's text ever ran."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

CHROMIUM = os.environ.get("CATALOGFLOW_CHROMIUM", "/usr/bin/chromium")
#: As root in a container Chromium needs --no-sandbox; the rest keep it off a closed
#: network (no update, sync or QUIC probes).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
#: Where the screenshots go: docs/console when regenerating the README's pictures.
SCREENSHOTS = os.environ.get("CATALOGFLOW_SCREENSHOTS", "")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which(CHROMIUM) or CHROMIUM
    assert Path(executable).exists(), (
        f"no Chromium at {CHROMIUM}: run deploy/local/install.sh (it installs Debian's chromium)"
    )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
        yield launched
        launched.close()


@dataclass
class Watched:
    """A page and what it reported: nothing of this should ever fill on our pages."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def quiet(self) -> bool:
        return not (self.dialogs or self.console_errors or self.page_errors)

    def report(self) -> str:
        return (
            f"dialogs {self.dialogs}, console errors {self.console_errors}, "
            f"page errors {self.page_errors}"
        )


def watched_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> Watched:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(30_000)
    watched = Watched(page)

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    return watched


def sign_in(watched: Watched, url: str, token: str) -> None:
    page = watched.page
    page.goto(f"{url}/")
    page.wait_for_url("**/login**")
    page.fill("input[name=token]", token)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_selector("header.top .user")


def no_horizontal_scroll(page: Page) -> bool:
    return bool(
        page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def screenshot(page: Page, name: str, tmp_path: Path) -> Path:
    """What the viewport shows, as a PNG under $CATALOGFLOW_SCREENSHOTS (docs/console)
    or the test's tmp."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path
