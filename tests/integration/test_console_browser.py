"""The web console in a real browser (Debian's Chromium, headless) over a real pipeline:
a worker on the broker with both simulators, the projector, and ``catalogflow api``
serving the console. A catalog person signs in, starts the seed workflow from its
action card, watches it progress without reloading, filters the Results tab to low
confidence, works through the moderation queue with the keyboard, an inline edit, a
rejection and a batch approval; then Magento holds exactly what was approved.

One product of the catalog carries script in its name and description, and one
workflow in its name: every page shows them as text, and no dialog, console error or
page error appears. The screenshots land in docs/console with
``CATALOGFLOW_SCREENSHOTS=docs/console`` (the README's command)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.records import ProductChanged
from catalogflow.streams.settings import Settings
from catalogflow.testbench.apithread import ApiThread
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import MagentoSimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess
from playwright.sync_api import Browser, Page

from catalogflow.api.auth import ApiRole, entry_line
from catalogflow.readmodel.projector import Projector
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.store import open_read_model
from catalogflow.readmodel.views import TaskFilter
from tests.integration.browser import (
    PHONE,
    Watched,
    browser,
    no_horizontal_scroll,
    screenshot,
    sign_in,
    watched_page,
)
from tests.integration.catalog import import_products, sample_shop

__all__ = ["browser"]  # the module's fixture

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
TOKEN_ENV = "CATALOGFLOW_TEST_MAGENTO_TOKEN"
CATALOG = 40  # a quarter is Dry Cat Food: 10 tasks, and the hostile product
WORKFLOW = "dry-cat-food"
USERS: dict[str, tuple[ApiRole, str]] = {
    "ada": ("admin", "console-test-token-of-ada-0123456789"),
    "mo": ("moderator", "console-test-token-of-mo-0123456789"),
    "ed": ("editor", "console-test-token-of-ed-0123456789"),
    "vi": ("viewer", "console-test-token-of-vi-0123456789"),
}
HOSTILE_SKU = "PF-XSS-1"
HOSTILE_NAME = '<script>alert("name")</script>Crunchy <img src=x onerror=alert(1)> kibble'
HOSTILE_TEXT = (
    "<p>Crunchy kibble for adult cats, maybe chicken or salmon. "
    '<a href="javascript:alert(3)">More</a> '
    "<img src=x onerror=alert(4)><script>alert(5)</script></p>"
)
HOSTILE_WORKFLOW = "Hostile <script>alert('workflow')</script><img src=x onerror=alert(6)>"


def hostile_product() -> ProductChanged:
    """A Dry Cat Food product whose supplier text carries script, and only hedges its
    flavor (the simulator is unsure of it: low confidence)."""
    change = next(sample_changes(1, start=CATALOG))  # a multiple of 4: Dry Cat Food
    values = {v["attribute"]: v for v in change["values"]}
    values["name"] = {**values["name"], "value": HOSTILE_NAME}
    values["description"] = {**values["description"], "value": HOSTILE_TEXT}
    return {
        **change,
        "event_id": "hostile-1",
        "sku": HOSTILE_SKU,
        "values": list(values.values()),
    }


@dataclass
class Console:
    url: str
    settings: Settings
    worker: WorkerProcess
    shop: MagentoSimulatorThread
    queries: ReadModelQueries


@pytest.fixture
def console(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Console]:
    with SimulatorThread(SimulatorConfig(latency_s=0.01)) as llm:
        shop = sample_shop(CATALOG)
        hostile = hostile_product()
        shop.simulator.add_product(
            HOSTILE_SKU, {v["attribute"]: v["value"] for v in hostile["values"]}
        )
        monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())
        changes: dict[str, Any] = {
            "llm_base_url": f"{llm.url}/v1",
            "llm_kind": "compatible",
            "magento_url": shop.url,
            "magento_token_env": TOKEN_ENV,
            "action_batch_size": 8,
            "action_concurrency": 4,
        }
        worker = start_worker(**changes)
        settings = settings.replace(
            **changes,
            api_port=free_port(),
            api_tokens=",".join(entry_line(u, role, t) for u, (role, t) in USERS.items()),
        )
        engine = open_read_model(settings)
        projector = Projector(settings, engine)
        projector.start()
        api = ApiThread(settings, engine)
        api.start()
        try:
            import_products(settings, worker, [*sample_changes(CATALOG), hostile])
            yield Console(api.url, settings, worker, shop, ReadModelQueries(engine))
        finally:
            api.stop()
            projector.stop()
            engine.dispose()
            shop.stop()


def apply(settings: Settings, changes: dict[str, Any] | None = None) -> str:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document.update(changes or {})
    definition = parse_definition(yaml.safe_dump(document), str(EXAMPLE))
    apply_definition(settings, definition, str(EXAMPLE), "test")
    return definition.id


def eventually(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def text_of(page: Page, selector: str) -> str:
    locator = page.locator(selector)
    return locator.first.inner_text() if locator.count() else ""


def assert_inert(watched: Watched) -> None:
    """The hostile texts are on the page as text, and none of their markup is."""
    page = watched.page
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("main script").count() == 0
    assert watched.quiet(), watched.report()


def test_a_catalog_team_runs_reviews_and_syncs_the_seed_workflow_in_the_browser(
    console: Console, browser: Browser, tmp_path: Path
) -> None:
    apply(console.settings)
    apply(console.settings, {"id": "hostile-names", "name": HOSTILE_WORKFLOW})
    eventually(lambda: len(console.queries.workflows()) == 2, "both workflows projected")
    desk = watched_page(browser)
    page = desk.page
    sign_in(desk, console.url, USERS["ada"][1])

    # The overview: a card per workflow, the hostile name as text.
    page.goto(f"{console.url}/")
    card = page.locator(f".workflow-card[data-workflow='{WORKFLOW}']")
    assert "never run" in card.inner_text()
    assert (
        HOSTILE_WORKFLOW
        in page.locator(".workflow-card[data-workflow='hostile-names']").inner_text()
    )
    assert_inert(desk)

    # The workflow page: the chain, the live match count; start from the action card.
    card.locator("h2 a").click()
    page.wait_for_url(f"**/workflows/{WORKFLOW}")
    assert [c.get_attribute("data-action-id") for c in page.locator(".action-card").all()] == [
        "extract",
        "enrich",
        "translate",
    ]
    assert page.locator("[data-count=matching]").inner_text() == str(CATALOG // 4 + 1)
    page.click("button[data-action=dry-run]")
    page.wait_for_selector("#dryrun-results .dry-result")
    assert page.locator("#dryrun-results .dry-result").count() == 3
    page.evaluate("window.notReloaded = true")
    seen = {text_of(page, "#chain")}
    page.locator(".action-card[data-action-id=extract] button[data-action=run]").click()
    page.wait_for_selector(".run-line .status[data-status]")

    def awaiting_all() -> bool:
        seen.add(text_of(page, "#chain"))
        counts = page.locator(".action-card[data-action-id=translate] .step-counts")
        return counts.count() > 0 and f"awaiting {CATALOG // 4 + 1}" in counts.inner_text()

    eventually(awaiting_all, "every task awaiting review, on the page", timeout=240)
    assert len(seen) >= 2, f"the progress did not change on the page: {seen}"
    assert page.evaluate("window.notReloaded") is True  # updated in place, never reloaded
    screenshot(page, "workflow", tmp_path)

    page.goto(f"{console.url}/")
    awaiting = page.locator(f".workflow-card[data-workflow='{WORKFLOW}'] [data-count=awaiting]")
    assert awaiting.inner_text() == str(CATALOG // 4 + 1)
    assert no_horizontal_scroll(page)
    screenshot(page, "overview", tmp_path)

    # The Results tab of the extraction, filtered to low confidence: the hostile product.
    page.goto(f"{console.url}/workflows/{WORKFLOW}")
    page.click("nav.tabs a:text-is('Results')")
    page.click("nav.tabs.actions a:text-is('extract')")
    page.fill("input[name=confidence_below]", "0.7")
    page.click("button[data-filter]")
    page.wait_for_url("**confidence_below=0.7**")
    rows = page.locator("tr.result-row")
    run_id = console.queries.runs(WORKFLOW)[0].run_id
    extracted = console.queries.tasks(run_id, TaskFilter(action="extract", q=HOSTILE_SKU))
    assert [r.get_attribute("data-sku") for r in rows.all()] == [HOSTILE_SKU], [
        (f.field, f.value, f.confidence) for t in extracted.items for f in t.fields
    ]
    assert rows.first.locator(".confidence.low").count() >= 1
    screenshot(page, "results", tmp_path)
    assert_inert(desk)

    # The product history, from the result row.
    rows.first.locator("a.sku").click()
    page.wait_for_url(f"**/products/{HOSTILE_SKU}")
    assert page.locator("ol.history li.entry").count() >= 3
    screenshot(page, "history", tmp_path)
    assert_inert(desk)

    # The moderation queue, as the moderator: keyboard, inline edit, reject, batch.
    review = watched_page(browser)
    sign_in(review, console.url, USERS["mo"][1])
    queue = review.page
    queue.goto(f"{console.url}/moderation?workflow_id={WORKFLOW}")
    items = queue.locator("#queue article.item")
    assert items.count() == CATALOG // 4 + 1
    assert "j" in queue.locator("#shortcuts").inner_text()
    pending = {i.sku: i for i in console.queries.moderation_queue(WORKFLOW).items}
    hostile = queue.locator(f"article.item[data-sku='{HOSTILE_SKU}']")
    assert HOSTILE_SKU in hostile.inner_text()
    screenshot(queue, "moderation", tmp_path)
    assert no_horizontal_scroll(queue)
    assert_inert(review)
    phone = watched_page(browser, PHONE)
    sign_in(phone, console.url, USERS["vi"][1])
    for path, name in ((f"/moderation?workflow_id={WORKFLOW}", "moderation-phone"), ("/", "")):
        phone.page.goto(f"{console.url}{path}")
        assert no_horizontal_scroll(phone.page), path
        if name:
            screenshot(phone.page, name, tmp_path)
    assert_inert(phone)

    order = [a.get_attribute("data-sku") or "" for a in items.all()]
    queue.keyboard.press("j")
    queue.keyboard.press("a")  # approves the first item, selects the next
    by_key = order[0]
    queue.wait_for_selector(f"article.item.sent[data-item-id='{pending[by_key].item_id}']")
    queue.keyboard.press("e")  # edits the selected item's first field
    edited = order[1]
    queue.keyboard.type(f"Handgeschrieben {edited}")
    queue.keyboard.press("Enter")
    edited_item = queue.locator(f"article.item[data-sku='{edited}']")
    edited_item.locator(".field-row.sent").wait_for()
    hostile.locator("button[data-key=r]").click()
    queue.wait_for_selector(f"article.item.sent[data-item-id='{pending[HOSTILE_SKU].item_id}']")
    queue.click("button[data-action=batch-approve]")
    batch = queue.locator("#batch-result")
    batch.wait_for()
    eventually(lambda: "sent for" in batch.inner_text(), "the batch's answer")
    assert batch.inner_text().startswith(f"APPROVE sent for {CATALOG // 4 - 1} items")
    assert_inert(review)

    run = console.queries.runs(WORKFLOW)[0]
    eventually(
        lambda: console.queries.run(run.run_id).status == "COMPLETED", "the run completed", 240
    )
    done = console.queries.run(run.run_id)
    assert done.counts == {"SYNCED": CATALOG // 4, "REJECTED": 1}

    # Magento holds the approved and the edited values, and nothing of the rejected.
    simulator = console.shop.simulator
    title = next(f for f in pending[by_key].fields if f.field == "shopping_title")
    assert simulator.value(by_key, "de", "shopping_title") == title.value
    edited_field = pending[edited].fields[0]
    assert simulator.value(edited, "de", edited_field.field) == f"Handgeschrieben {edited}"
    assert all(w.sku != HOSTILE_SKU for w in simulator.writes)
    written = {w.sku for w in simulator.writes}
    assert written == set(pending) - {HOSTILE_SKU}

    queue.goto(f"{console.url}/moderation?workflow_id={WORKFLOW}")
    assert queue.locator("#queue article.item").count() == 0
    phone.page.goto(f"{console.url}/")
    assert no_horizontal_scroll(phone.page)
    screenshot(phone.page, "overview-phone", tmp_path)
    for watched in (desk, review, phone):
        assert_inert(watched)


def csrf_of(page: Page) -> str:
    token = page.locator("form[action='/logout'] input[name=csrf_token]").get_attribute("value")
    assert token
    return token


def test_roles_hold_in_the_browser_and_an_editor_is_not_the_second_approval(
    console: Console, browser: Browser
) -> None:
    workflow = apply(
        console.settings,
        {
            "id": "dry-cat-food-second",
            "actions": [
                *yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["actions"][:2],
                {
                    **yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["actions"][2],
                    "moderation": {"mode": "always", "second_approval": True},
                },
            ],
        },
    )
    eventually(lambda: console.queries.workflows(), "the workflow projected")
    run_id = start_run(console.settings, workflow, "test")
    matching = CATALOG // 4 + 1
    eventually(
        lambda: len(console.queries.moderation_queue(workflow).items) == matching,
        "every item in the queue",
        240,
    )

    # A viewer sees the pages without a single run or decision button, and a decision
    # or a run forged with the viewer's own session and CSRF token is refused.
    viewer = watched_page(browser)
    sign_in(viewer, console.url, USERS["vi"][1])
    page = viewer.page
    for path in (f"/workflows/{workflow}", f"/moderation?workflow_id={workflow}"):
        page.goto(f"{console.url}{path}")
        assert page.locator("button[data-action], button[data-decision]").count() == 0, path
        assert page.locator("form[method=post]:not([action='/logout'])").count() == 0, path
    item = console.queries.moderation_queue(workflow).items[0]
    decide_url = f"{console.url}/moderation/{quote(item.item_id, safe='')}/decide"
    forged = page.request.post(
        decide_url, form={"decision": "APPROVE", "csrf_token": csrf_of(page)}
    )
    assert forged.status == 403 and "needs editor" in forged.text()
    run = page.request.post(
        f"{console.url}/workflows/{workflow}/run", form={"csrf_token": csrf_of(page)}
    )
    assert run.status == 403

    # The moderator's session without the CSRF token is refused too.
    moderator = watched_page(browser)
    sign_in(moderator, console.url, USERS["mo"][1])
    no_token = moderator.page.request.post(decide_url, form={"decision": "APPROVE"})
    assert no_token.status == 403 and "CSRF" in no_token.text()
    assert console.queries.moderation_queue(workflow).items[0].decisions == []

    # The editor approves with the keyboard: recorded, but the item waits for a moderator.
    editor = watched_page(browser)
    sign_in(editor, console.url, USERS["ed"][1])
    queue = editor.page
    queue.goto(f"{console.url}/moderation?workflow_id={workflow}")
    first = queue.locator("#queue article.item").first
    assert "Needs a moderator's approval (yours counts as the editor's)" in first.inner_text()
    sku = first.get_attribute("data-sku")
    queue.keyboard.press("j")
    queue.keyboard.press("a")
    queue.wait_for_selector(f"article.item.sent[data-sku='{sku}']")

    def editor_recorded() -> list[Any]:
        items = {i.sku: i for i in console.queries.moderation_queue(workflow).items}
        return items[sku].decisions if sku in items else []

    [recorded] = eventually(editor_recorded, "the editor's approval in the read model")
    assert (recorded.actor_id, recorded.role, recorded.decision) == ("ed", "EDITOR", "APPROVE")
    assert console.queries.run(run_id).counts.get("SYNCED", 0) == 0
    queue.reload()
    assert queue.locator(f"article.item[data-sku='{sku}'] [data-decision]").count() == 0

    # The moderator sees the editor's approval and gives the second one; then rejects
    # the rest in one batch. Only the doubly approved product reaches Magento.
    review = moderator.page
    review.goto(f"{console.url}/moderation?workflow_id={workflow}")
    card = review.locator(f"article.item[data-sku='{sku}']")
    assert "APPROVE by ed (editor)" in card.locator("ul.decisions").inner_text()
    card.locator("button[data-key=a]").click()
    review.wait_for_selector(f"article.item.sent[data-sku='{sku}']")
    review.click("button[data-action=batch-reject]")
    eventually(lambda: "sent for" in review.locator("#batch-result").inner_text(), "the batch")
    eventually(lambda: console.queries.run(run_id).status == "COMPLETED", "the run completed", 240)
    assert console.queries.run(run_id).counts == {"SYNCED": 1, "REJECTED": matching - 1}
    assert {w.sku for w in console.shop.simulator.writes} == {sku}
    for watched in (viewer, moderator, editor):
        assert_inert(watched)
