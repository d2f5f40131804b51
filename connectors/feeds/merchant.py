"""Google Merchant Center feed: one item per product, written as RSS 2.0 XML (``g:``
namespace) and as a tab-separated text feed.

An item is built from a product snapshot (a row of the products table) overlaid with
the approved AI values, so what reaches the feed is what a person approved. Text the AI
wrote is flagged: it also goes out as ``structured_title`` / ``structured_description``
with ``digital_source_type`` ``trained_algorithmic_media``, which Google requires for
generated titles and descriptions (``reference/magento-rest.md`` §9).

Both files are rewritten atomically: a feed source must always list *all* products (a
missing item removes the product from Merchant Center), so a half-written file is worse
than a stale one.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TextIO
from xml.sax.saxutils import escape

from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.records import ProductSnapshot, SnapshotValue, Value

GOOGLE_NS = "http://base.google.com/ns/1.0"
#: Google's limits, counted in characters (code points), not bytes.
ID_MAX = 50
TITLE_MAX = 150
DESCRIPTION_MAX = 5000
AVAILABILITIES = ("in_stock", "out_of_stock", "preorder", "backorder")
#: Availabilities that need an ``availability_date``.
DATED_AVAILABILITIES = ("preorder", "backorder")
REQUIRED = ("id", "title", "description", "link", "image_link", "availability", "price")
AI_SOURCE_TYPE = "trained_algorithmic_media"
#: TSV columns, in order; the XML uses the same names under ``g:``.
COLUMNS = (
    "id",
    "title",
    "description",
    "link",
    "image_link",
    "availability",
    "availability_date",
    "price",
    "brand",
    "gtin",
    "mpn",
    "identifier_exists",
    "condition",
    "google_product_category",
    "product_type",
    "structured_title",
    "structured_description",
)

#: Snapshot attribute codes read for each feed attribute, first found wins.
BRAND_ATTRIBUTES = ("brand", "manufacturer")
GTIN_ATTRIBUTES = ("gtin", "ean", "upc")
LINK_ATTRIBUTES = ("link", "url")
IMAGE_ATTRIBUTES = ("image_link", "image")
QUANTITY_ATTRIBUTES = ("qty", "quantity")
#: Magento's default product URL suffix and product media folder.
URL_SUFFIX = ".html"
MEDIA_PATH = "/media/catalog/product"

_PRICE = re.compile(r"^\d+(\.\d+)? [A-Z]{3}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Characters XML 1.0 forbids (C0 controls but tab/newline/CR, surrogates, U+FFFE/F).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"[^\S\n]+")
_ANY_WHITESPACE = re.compile(r"\s+")


class FeedError(CatalogflowError):
    """A feed could not be built or written (bad settings, a file system error)."""


@dataclass(frozen=True)
class FeedItem:
    """One product as Merchant Center sees it. Text is plain (no HTML); an empty
    string means the attribute is absent. ``ai_title`` / ``ai_description`` say the
    text was written by the AI."""

    id: str
    title: str
    description: str
    link: str
    image_link: str
    price: str  # value and ISO 4217 code, e.g. "12.99 EUR"
    availability: str
    availability_date: str = ""
    brand: str = ""
    gtin: str = ""
    mpn: str = ""
    condition: str = "new"
    google_product_category: str = ""
    product_type: str = ""
    ai_title: bool = False
    ai_description: bool = False

    @property
    def identifier_exists(self) -> str:
        """``no`` when there is neither a GTIN nor brand + MPN, as Google asks; else empty."""
        return "" if self.gtin or (self.brand and self.mpn) else "no"


@dataclass(frozen=True)
class Channel:
    """The RSS channel header."""

    title: str = "Products"
    link: str = ""
    description: str = "Product feed written by catalogflow"


@dataclass(frozen=True)
class Rejected:
    """An item left out of the feed, and why."""

    sku: str
    attributes: tuple[str, ...]  # missing or unusable attributes
    reason: str


@dataclass(frozen=True)
class Truncated:
    """A text cut to Google's limit at a word boundary."""

    sku: str
    attribute: str  # "title" or "description"
    length: int  # code points before the cut


@dataclass(frozen=True)
class FeedReport:
    written: int
    rejected: tuple[Rejected, ...]
    truncated: tuple[Truncated, ...]
    xml_path: Path
    tsv_path: Path

    def lines(self) -> list[str]:
        """What happened, for a person: one line per problem, then the totals."""
        out = [f"{r.sku}: left out, {r.reason}" for r in self.rejected]
        out += [
            f"{t.sku}: {t.attribute} cut from {t.length} to "
            f"{TITLE_MAX if t.attribute == 'title' else DESCRIPTION_MAX} characters at most"
            for t in self.truncated
        ]
        out.append(
            f"{self.written} items written to {self.xml_path} and {self.tsv_path}, "
            f"{len(self.rejected)} left out, {len(self.truncated)} texts truncated"
        )
        return out


# --- building items -------------------------------------------------------------------


def is_listed(snapshot: ProductSnapshot) -> bool:
    """A product belongs in the feed unless it was deleted or disabled."""
    return not snapshot["deleted"] and snapshot["status"] != "disabled"


def feed_item(
    snapshot: ProductSnapshot,
    approved: Mapping[str, Value],
    *,
    shop_url: str,
    currency: str,
    locale: str | None = None,
) -> FeedItem:
    """Build the item of one product: ``snapshot`` is a ProductSnapshot record,
    ``approved`` maps attribute codes to approved AI values for ``locale`` (``name`` is
    the title, ``description`` the description; other codes overlay the snapshot's).

    Values are taken for ``locale`` first, then the non-localised ones; store-view
    (scoped) values only when there is no global one. Nothing is invented: what is
    missing stays empty and :func:`check_item` names it.
    """
    if not _CURRENCY.match(currency):
        raise FeedError(f"currency {currency!r} is not an ISO 4217 code such as EUR")
    values = _pick_values(snapshot["values"], locale)
    ai = {code: value for code, value in approved.items() if _present(value)}
    values.update(ai)
    base = shop_url.rstrip("/")
    categories = snapshot["categories"]
    return FeedItem(
        id=_clean(snapshot["sku"]),
        title=_clean(_text(values.get("name"))),
        description=html_to_text(_text(values.get("description"))),
        link=_link(values, base),
        image_link=_image_link(values, base),
        price=_price(values.get("price"), currency),
        availability=_availability(values),
        availability_date=_clean(_text(values.get("availability_date"))),
        brand=_clean(_text(_first(values, BRAND_ATTRIBUTES))),
        gtin=_clean(_text(_first(values, GTIN_ATTRIBUTES))),
        mpn=_clean(_text(values.get("mpn"))),
        condition=_clean(_text(values.get("condition"))) or "new",
        google_product_category=_clean(_text(values.get("google_product_category"))),
        product_type=_clean(categories[0].replace("/", " > ")) if categories else "",
        ai_title=_present(ai.get("name")),
        ai_description=_present(ai.get("description")),
    )


def check_item(item: FeedItem) -> list[str]:
    """Names of required attributes that are missing or unusable (an id over 50
    characters, an unknown availability, a price without a currency, a link that is
    not http(s), a pre-order without its date); empty when the item can go out."""
    problems = [name for name in REQUIRED if not getattr(item, name).strip()]
    if len(item.id) > ID_MAX and "id" not in problems:
        problems.append("id")
    if item.availability and item.availability not in AVAILABILITIES:
        problems.append("availability")
    if item.price and not _PRICE.match(item.price):
        problems.append("price")
    for name in ("link", "image_link"):
        url = getattr(item, name)
        if url and not url.startswith(("http://", "https://")):
            problems.append(name)
    if item.availability in DATED_AVAILABILITIES and not item.availability_date:
        problems.append("availability_date")
    return [name for name in COLUMNS if name in problems]


def _pick_values(values: Iterable[SnapshotValue], locale: str | None) -> dict[str, Value]:
    """attribute code → value, best match for ``locale`` (lower rank wins)."""
    best: dict[str, tuple[int, Value]] = {}
    for value in values:
        if value["value"] is None:
            continue
        if value["locale"] not in (None, locale):
            continue
        rank = (0 if value["locale"] is not None else 2) + (value["scope"] is not None)
        code = value["attribute"]
        if code not in best or rank < best[code][0]:
            best[code] = (rank, value["value"])
    return {code: value for code, (_, value) in best.items()}


def _present(value: Any) -> bool:
    return value is not None and _text(value).strip() != ""


def _first(values: Mapping[str, Value], codes: Sequence[str]) -> Value:
    return next((values[code] for code in codes if _present(values.get(code))), None)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _clean(text: str) -> str:
    """NFC (so limits count what a reader sees), no XML-illegal characters, one space
    between words."""
    text = unicodedata.normalize("NFC", _XML_ILLEGAL.sub("", text))
    return _ANY_WHITESPACE.sub(" ", text).strip()


def _link(values: Mapping[str, Value], base: str) -> str:
    url = _clean(_text(_first(values, LINK_ATTRIBUTES)))
    if url:
        return url
    url_key = _clean(_text(values.get("url_key"))).strip("/")
    return f"{base}/{url_key}{URL_SUFFIX}" if url_key and base else ""


def _image_link(values: Mapping[str, Value], base: str) -> str:
    image = _clean(_text(_first(values, IMAGE_ATTRIBUTES)))
    if not image or image == "no_selection":  # Magento's "no image" marker
        return ""
    if image.startswith(("http://", "https://")):
        return image
    return f"{base}{MEDIA_PATH}/{image.lstrip('/')}" if base else ""


def _price(value: Any, currency: str) -> str:
    if isinstance(value, bool) or not _present(value):
        return ""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return ""
    if not amount.is_finite() or amount < 0:
        return ""
    return f"{amount.quantize(Decimal('0.01'))} {currency}"


def _availability(values: Mapping[str, Value]) -> str:
    stated = _clean(_text(values.get("availability"))).lower().replace(" ", "_")
    if stated:
        return stated
    in_stock = values.get("is_in_stock")
    if isinstance(in_stock, bool):
        return "in_stock" if in_stock else "out_of_stock"
    quantity = _first(values, QUANTITY_ATTRIBUTES)
    if isinstance(quantity, int | float) and not isinstance(quantity, bool):
        return "in_stock" if quantity > 0 else "out_of_stock"
    return ""


class _TextExtractor(HTMLParser):
    BLOCKS = frozenset(
        ("p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section",
         "article", "header", "footer", "blockquote", "pre", "hr",
         "h1", "h2", "h3", "h4", "h5", "h6")
    )  # fmt: skip
    HIDDEN = frozenset(("script", "style", "template", "head"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Plain text of an HTML description: tags dropped, entities decoded, one line per
    block (paragraph, list item), spaces collapsed."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = unicodedata.normalize("NFC", _XML_ILLEGAL.sub("", "".join(parser.parts)))
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def truncate_words(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` code points, at the last word boundary when one is in
    the second half (else mid-word), without trailing spaces or separators."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace():
        boundary = max(cut.rfind(" "), cut.rfind("\n"))
        if boundary >= limit // 2:
            cut = cut[:boundary]
    return cut.rstrip(" \n,;:-\u2013\u2014")  # spaces, separators, dashes


# --- writing the files ----------------------------------------------------------------


def write_feeds(
    items: Iterable[FeedItem],
    xml_path: Path | str,
    tsv_path: Path | str,
    *,
    channel: Channel | None = None,
) -> FeedReport:
    """Write every usable item to both feeds and report the rest.

    Items with missing required attributes, or an id already written, are left out.
    Titles and descriptions over Google's limits are cut at a word boundary. Each file
    is written to a temporary file beside it, synced, and only then renamed over the
    old one, and only once both are complete: if anything fails (an item that raises,
    a full disk) the old feeds stay as they were.
    """
    xml_path, tsv_path = Path(xml_path), Path(tsv_path)
    rejected: list[Rejected] = []
    truncated: list[Truncated] = []
    staged: list[Path] = []
    try:
        xml_tmp = _stage(xml_path, staged)
        with xml_tmp.open("w", encoding="utf-8", newline="\n") as out:
            accepted = _write_xml(items, out, channel or Channel(), rejected, truncated)
            _sync(out)
        tsv_tmp = _stage(tsv_path, staged)
        with tsv_tmp.open("w", encoding="utf-8", newline="\n") as out:
            _write_tsv(accepted, out)
            _sync(out)
        os.replace(xml_tmp, xml_path)
        os.replace(tsv_tmp, tsv_path)
        staged.clear()
        for folder in {xml_path.parent, tsv_path.parent}:
            _sync_folder(folder)
    except OSError as exc:
        raise FeedError(f"cannot write the feeds {xml_path} and {tsv_path}: {exc}") from exc
    finally:
        for leftover in staged:
            leftover.unlink(missing_ok=True)
    return FeedReport(len(accepted), tuple(rejected), tuple(truncated), xml_path, tsv_path)


def _write_xml(
    items: Iterable[FeedItem],
    out: TextIO,
    channel: Channel,
    rejected: list[Rejected],
    truncated: list[Truncated],
) -> list[FeedItem]:
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<rss xmlns:g="{GOOGLE_NS}" version="2.0">\n<channel>\n')
    for name in ("title", "link", "description"):
        out.write(f"<{name}>{escape(_clean(getattr(channel, name)))}</{name}>\n")
    accepted: list[FeedItem] = []
    seen: set[str] = set()
    for item in items:
        missing = check_item(item)
        if missing:
            reason = f"missing or unusable: {', '.join(missing)}"
            rejected.append(Rejected(item.id, tuple(missing), reason))
            continue
        if item.id in seen:
            rejected.append(Rejected(item.id, ("id",), "duplicate id: an earlier item has it"))
            continue
        seen.add(item.id)
        item = _fit(item, truncated)
        out.write(_item_xml(item))
        accepted.append(item)
    out.write("</channel>\n</rss>\n")
    return accepted


def _fit(item: FeedItem, truncated: list[Truncated]) -> FeedItem:
    title = truncate_words(item.title, TITLE_MAX)
    description = truncate_words(item.description, DESCRIPTION_MAX)
    if title != item.title:
        truncated.append(Truncated(item.id, "title", len(item.title)))
    if description != item.description:
        truncated.append(Truncated(item.id, "description", len(item.description)))
    if (title, description) == (item.title, item.description):
        return item
    return dataclasses.replace(item, title=title, description=description)


def _attributes(item: FeedItem) -> list[tuple[str, str]]:
    """(name, value) of the plain attributes an item has, in column order."""
    names = [n for n in COLUMNS if not n.startswith("structured_")]
    return [(name, getattr(item, name)) for name in names if getattr(item, name)]


def _item_xml(item: FeedItem) -> str:
    parts = ["<item>\n"]
    for name, value in _attributes(item):
        parts.append(f"<g:{name}>{escape(value)}</g:{name}>\n")
    for name, content in _structured(item):
        parts.append(
            f"<g:{name}><g:digital_source_type>{AI_SOURCE_TYPE}</g:digital_source_type>"
            f"<g:content>{escape(content)}</g:content></g:{name}>\n"
        )
    parts.append("</item>\n")
    return "".join(parts)


def _structured(item: FeedItem) -> list[tuple[str, str]]:
    """The ``structured_*`` attributes: only for text the AI wrote."""
    found = []
    if item.ai_title:
        found.append(("structured_title", item.title))
    if item.ai_description:
        found.append(("structured_description", item.description))
    return found


def _write_tsv(items: Iterable[FeedItem], out: TextIO) -> None:
    out.write("\t".join(COLUMNS) + "\n")
    for item in items:
        cells = dict(_attributes(item))
        for name, content in _structured(item):
            cells[name] = f"{AI_SOURCE_TYPE}:{_quoted(_cell(content))}"
        out.write("\t".join(_cell(cells.get(name, "")) for name in COLUMNS) + "\n")


def _cell(value: str) -> str:
    """A TSV value: no tabs or line breaks (they would split cells or rows)."""
    return _ANY_WHITESPACE.sub(" ", value).strip()


def _quoted(value: str) -> str:
    """A sub-attribute value of the text format: quoted when it holds ``:`` or ``"``
    (inner quotes doubled)."""
    if ":" in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _stage(path: Path, staged: list[Path]) -> Path:
    """A new empty temporary file beside ``path`` with the mode the old file had."""
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    staged.append(Path(name))
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    os.fchmod(descriptor, mode)
    os.close(descriptor)
    return Path(name)


def _sync(out: TextIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
