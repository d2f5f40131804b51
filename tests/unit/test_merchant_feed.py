import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from catalogflow.connectors.feeds.merchant import (
    COLUMNS,
    DESCRIPTION_MAX,
    GOOGLE_NS,
    REQUIRED,
    TITLE_MAX,
    FeedError,
    FeedItem,
    check_item,
    feed_item,
    html_to_text,
    is_listed,
    truncate_words,
    write_feeds,
)
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.products import apply_change
from catalogflow.streams.records import ProductSnapshot, Value

G = f"{{{GOOGLE_NS}}}"
T1 = datetime(2026, 3, 1, tzinfo=UTC)
SHOP = "https://shop.example.de/"


def snapshot(
    *values: tuple[str, Value, str | None],
    sku: str = "CAT-1",
    deleted: bool = False,
    status: str = "enabled",
) -> ProductSnapshot:
    """A ProductSnapshot record with ``(attribute, value, locale)`` values."""
    return {
        "sku": sku,
        "deleted": deleted,
        "values": [
            {
                "attribute": attribute,
                "locale": locale,
                "scope": None,
                "value": value,
                "updated_at": T1,
                "author_kind": "IMPORT",
            }
            for attribute, value, locale in values
        ],
        "categories": ["Pet Food/Cat/Dry Cat Food"],
        "supplier": None,
        "status": status,
        "family": None,
        "version": 1,
        "last_event_id": "e1",
        "updated_at": T1,
    }


def complete(sku: str = "CAT-1", deleted: bool = False, status: str = "enabled") -> ProductSnapshot:
    return snapshot(
        ("name", "Whiskerly Adult Salmon 2 kg", None),
        ("description", "<p>Real salmon &amp; rice.</p><ul><li>Adult cats</li></ul>", None),
        ("url_key", "whiskerly-adult-salmon-2-kg", None),
        ("image", "/c/f/cf1.jpg", None),
        ("price", 19.9, None),
        ("is_in_stock", True, None),
        ("brand", "Whiskerly", None),
        ("gtin", "4001234567890", None),
        sku=sku,
        deleted=deleted,
        status=status,
    )


def item(sku: str = "CAT-1", **changes: Any) -> FeedItem:
    base = feed_item(complete(sku=sku), {}, shop_url=SHOP, currency="EUR")
    return dataclasses.replace(base, **changes)


def write(tmp_path: Path, items: Any) -> tuple[Any, Path, Path]:
    xml_path, tsv_path = tmp_path / "feed.xml", tmp_path / "feed.tsv"
    return write_feeds(items, xml_path, tsv_path), xml_path, tsv_path


def xml_items(path: Path) -> list[ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel is not None
    return channel.findall("item")


def tsv_rows(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # ends with a newline, no blank rows
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:-1]]
    assert all(len(row) == len(header) for row in rows)
    return [dict(zip(header, row, strict=True)) for row in rows]


# --- building items -------------------------------------------------------------------


def test_item_from_a_snapshot_reads_links_price_stock_and_strips_html() -> None:
    built = feed_item(complete(), {}, shop_url=SHOP, currency="EUR")
    assert built == FeedItem(
        id="CAT-1",
        title="Whiskerly Adult Salmon 2 kg",
        description="Real salmon & rice.\nAdult cats",
        link="https://shop.example.de/whiskerly-adult-salmon-2-kg.html",
        image_link="https://shop.example.de/media/catalog/product/c/f/cf1.jpg",
        price="19.90 EUR",
        availability="in_stock",
        brand="Whiskerly",
        gtin="4001234567890",
        condition="new",
        product_type="Pet Food > Cat > Dry Cat Food",
    )
    assert check_item(built) == []
    assert built.identifier_exists == ""


def test_approved_values_overlay_the_snapshot_and_mark_ai_text() -> None:
    built = feed_item(
        complete(), {"name": "Whiskerly Lachs 2 kg", "description": None}, shop_url=SHOP,
        currency="EUR",
    )  # fmt: skip
    assert (built.title, built.ai_title) == ("Whiskerly Lachs 2 kg", True)
    assert built.description.startswith("Real salmon") and not built.ai_description
    both = feed_item(complete(), {"description": "<b>KI</b> Text"}, shop_url=SHOP, currency="EUR")
    assert (both.description, both.ai_description, both.ai_title) == ("KI Text", True, False)


def test_locale_values_win_over_global_ones_and_other_locales_are_ignored() -> None:
    snap = complete()
    snap["values"] += snapshot(
        ("name", "Lachs Trockenfutter", "de_DE"), ("description", "Französisch", "fr_FR")
    )["values"]
    german = feed_item(snap, {}, shop_url=SHOP, currency="EUR", locale="de_DE")
    assert german.title == "Lachs Trockenfutter"
    assert german.description.startswith("Real salmon")
    assert feed_item(snap, {}, shop_url=SHOP, currency="EUR").title.startswith("Whiskerly")


def test_a_sample_catalog_product_has_everything_a_feed_needs() -> None:
    snap = apply_change(None, next(sample_changes(2, start=1)))
    built = feed_item(snap, {}, shop_url=SHOP, currency="EUR")
    assert built.title and built.price.endswith(" EUR") and built.brand
    assert "<p>" not in built.description
    assert built.link.endswith("-pf-000001.html") and built.image_link.endswith("pf-000001.jpg")
    assert check_item(built) == []
    assert built.identifier_exists == "no"


def test_check_item_names_missing_and_unusable_attributes() -> None:
    bad = item(title=" ", image_link="", price="12.99", availability="soon", link="/x.html")
    assert check_item(bad) == ["title", "link", "image_link", "availability", "price"]
    assert check_item(item(id="X" * 51)) == ["id"]
    assert check_item(item(availability="preorder")) == ["availability_date"]
    assert check_item(item(availability="preorder", availability_date="2026-05-01")) == []


def test_bad_currency_is_refused_and_deleted_or_disabled_products_are_not_listed() -> None:
    with pytest.raises(FeedError, match="currency 'euro'"):
        feed_item(complete(), {}, shop_url=SHOP, currency="euro")
    assert is_listed(complete())
    assert not is_listed(complete(deleted=True))
    assert not is_listed(complete(status="disabled"))


def test_html_to_text_drops_tags_scripts_and_decodes_entities() -> None:
    markup = "<div><h2>Für&nbsp;Katzen</h2><script>x()</script><p>3 &lt; 5 &amp; a<br/>b</p></div>"
    assert html_to_text(markup) == "Für Katzen\n3 < 5 & a\nb"
    assert html_to_text("plain  text, 2 < 3") == "plain text, 2 < 3"


# --- limits ---------------------------------------------------------------------------


def test_truncation_counts_code_points_and_cuts_at_a_word_boundary() -> None:
    words = "Größe Ärmel Füße Öl Ölkännchen 猫の餌 " * 20
    cut = truncate_words(words.strip(), TITLE_MAX)
    assert len(cut) <= TITLE_MAX < len(cut.encode())
    assert words.startswith(cut) and words[len(cut)] == " "
    assert truncate_words("x" * 200, TITLE_MAX) == "x" * TITLE_MAX  # no boundary: hard cut
    assert truncate_words("short", TITLE_MAX) == "short"


def test_feed_enforces_limits_in_code_points_and_reports_them(tmp_path: Path) -> None:
    title = "Trockenfutter für ältere Katzen mit Lachs und Süßkartoffel " * 5
    description = "Schmackhaftes Trockenfutter für Katzen — 猫 " * 200
    report, xml_path, tsv_path = write(
        tmp_path, [item(title=title.strip(), description=description.strip(), ai_title=True)]
    )
    assert {(t.sku, t.attribute) for t in report.truncated} == {
        ("CAT-1", "title"),
        ("CAT-1", "description"),
    }
    (element,) = xml_items(xml_path)
    written_title = element.findtext(f"{G}title") or ""
    written_description = element.findtext(f"{G}description") or ""
    assert 0 < len(written_title) <= TITLE_MAX < len(written_title.encode())
    assert 0 < len(written_description) <= DESCRIPTION_MAX < len(written_description.encode())
    assert title.startswith(written_title + " ")
    assert element.findtext(f"{G}structured_title/{G}content") == written_title
    (row,) = tsv_rows(tsv_path)
    assert row["title"] == written_title
    assert len(row["description"]) <= DESCRIPTION_MAX
    assert any("title cut from" in line for line in report.lines())


# --- the files ------------------------------------------------------------------------


def test_xml_is_rss_with_the_g_namespace_and_every_item_has_the_required_attributes(
    tmp_path: Path,
) -> None:
    items = [item("CAT-1"), item("CAT-2", title="Tom & Jerry <Katzenfutter>", gtin="")]
    report, xml_path, _ = write(tmp_path, items)
    assert report.written == 2 and not report.rejected
    text = xml_path.read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert f'xmlns:g="{GOOGLE_NS}"' in text
    elements = xml_items(xml_path)
    for element in elements:
        for name in REQUIRED:
            assert (element.findtext(f"{G}{name}") or "").strip(), name
    assert elements[1].findtext(f"{G}title") == "Tom & Jerry <Katzenfutter>"
    assert elements[1].findtext(f"{G}identifier_exists") == "no"
    assert elements[0].find(f"{G}identifier_exists") is None
    assert elements[0].findtext(f"{G}price") == "19.90 EUR"


def test_items_missing_required_attributes_are_left_out_and_reported(tmp_path: Path) -> None:
    items = [item("CAT-1"), item("CAT-2", image_link="", price=""), item("CAT-1")]
    report, xml_path, tsv_path = write(tmp_path, items)
    assert report.written == 1
    assert [(r.sku, r.attributes) for r in report.rejected] == [
        ("CAT-2", ("image_link", "price")),
        ("CAT-1", ("id",)),
    ]
    assert "CAT-2: left out, missing or unusable: image_link, price" in report.lines()
    assert [e.findtext(f"{G}id") for e in xml_items(xml_path)] == ["CAT-1"]
    assert [row["id"] for row in tsv_rows(tsv_path)] == ["CAT-1"]


def test_tsv_has_a_header_and_no_tabs_or_newlines_inside_values(tmp_path: Path) -> None:
    messy = item("CAT-2", title="Tab\there", description="Line one\nLine two\r\n\tthree")
    _, _, tsv_path = write(tmp_path, [item("CAT-1"), messy])
    assert tsv_path.read_text(encoding="utf-8").split("\n")[0] == "\t".join(COLUMNS)
    rows = tsv_rows(tsv_path)
    assert [row["id"] for row in rows] == ["CAT-1", "CAT-2"]
    assert rows[1]["title"] == "Tab here"
    assert rows[1]["description"] == "Line one Line two three"
    assert rows[0]["description"] == "Real salmon & rice. Adult cats"


def test_structured_attributes_only_for_ai_written_text(tmp_path: Path) -> None:
    items = [
        item("HUMAN"),
        item("AI-TITLE", title='Lachs: "Adult" 2 kg', ai_title=True),
        item("AI-BOTH", title="Lachs 2 kg", description="Nur KI", ai_title=True,
             ai_description=True),
    ]  # fmt: skip
    _, xml_path, tsv_path = write(tmp_path, items)
    human, ai_title, ai_both = xml_items(xml_path)
    assert human.find(f"{G}structured_title") is None
    assert human.find(f"{G}structured_description") is None
    assert ai_title.find(f"{G}structured_description") is None
    structured = ai_title.find(f"{G}structured_title")
    assert structured is not None
    assert structured.findtext(f"{G}digital_source_type") == "trained_algorithmic_media"
    assert structured.findtext(f"{G}content") == 'Lachs: "Adult" 2 kg'
    assert ai_title.findtext(f"{G}title") == 'Lachs: "Adult" 2 kg'  # the plain one stays
    assert ai_both.findtext(f"{G}structured_description/{G}content") == "Nur KI"
    rows = {row["id"]: row for row in tsv_rows(tsv_path)}
    assert rows["HUMAN"]["structured_title"] == rows["HUMAN"]["structured_description"] == ""
    assert rows["AI-TITLE"]["structured_title"] == (
        'trained_algorithmic_media:"Lachs: ""Adult"" 2 kg"'
    )
    assert rows["AI-TITLE"]["structured_description"] == ""
    assert rows["AI-BOTH"]["structured_title"] == "trained_algorithmic_media:Lachs 2 kg"
    assert rows["AI-BOTH"]["structured_description"] == "trained_algorithmic_media:Nur KI"


def test_a_failure_midway_leaves_the_old_feeds_intact(tmp_path: Path) -> None:
    write(tmp_path, [item("OLD")])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def failing() -> Iterator[FeedItem]:
        yield item("NEW-1")
        yield item("NEW-2")
        raise RuntimeError("the products table went away")

    with pytest.raises(RuntimeError, match="went away"):
        write(tmp_path, failing())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp files


def test_rewrite_replaces_both_files_and_keeps_their_mode(tmp_path: Path) -> None:
    _, xml_path, tsv_path = write(tmp_path, [item("OLD")])
    xml_path.chmod(0o640)
    write(tmp_path, [item("NEW")])
    assert [e.findtext(f"{G}id") for e in xml_items(xml_path)] == ["NEW"]
    assert [row["id"] for row in tsv_rows(tsv_path)] == ["NEW"]
    assert xml_path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.tsv", "feed.xml"]


def test_an_unwritable_folder_is_a_feed_error(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="cannot write the feeds"):
        write_feeds([item()], tmp_path / "missing" / "feed.xml", tmp_path / "feed.tsv")
    assert list(tmp_path.iterdir()) == []
