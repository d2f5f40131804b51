"""The deterministic "model" behind the LLM simulator — test and demo infrastructure.

It answers a chat request by reading the product block of the prompt and filling the
requested JSON schema with values it can point to in that text. The rules are fixed so
tests and prompt templates can rely on them (the simulator module's docstring lists
them). Nothing here does I/O; ``LLMSimulator`` wraps it in HTTP.

Every answer is a sequence of :class:`Span` objects: the content is their concatenation,
and each span says how sure the model is of it, which becomes the logprob of its tokens.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Certainty = Literal["sure", "guess", "structural"]

#: Probability of every token of a span, by certainty: a value found in (or ordered by)
#: the product text, a value the model made up or abstained on, and JSON syntax.
PROBABILITY: dict[Certainty, float] = {"sure": 0.97, "guess": 0.35, "structural": 0.999}
LOGPROB: dict[Certainty, float] = {k: math.log(p) for k, p in PROBABILITY.items()}

CONFIDENCE_FOUND, CONFIDENCE_GUESSED = 0.95, 0.3
#: Words that make a value found right after them an unsure one.
HEDGES = frozenset({"maybe", "perhaps", "possibly", "probably", "might"})

#: Word-for-word "translation" used for every target locale (the prefix names the locale).
TRANSLATIONS: dict[str, str] = {
    "chicken": "Huhn",
    "salmon": "Lachs",
    "tuna": "Thunfisch",
    "beef": "Rind",
    "turkey": "Truthahn",
    "lamb": "Lamm",
    "kitten": "Kätzchen",
    "kittens": "Kätzchen",
    "adult": "Erwachsene",
    "adults": "Erwachsene",
    "senior": "Senioren",
    "seniors": "Senioren",
    "cat": "Katze",
    "cats": "Katzen",
    "dog": "Hund",
    "dogs": "Hunde",
    "dry": "trocken",
    "wet": "nass",
    "food": "Futter",
    "treats": "Leckerlis",
    "recipe": "Rezept",
    "real": "echtem",
    "with": "mit",
    "for": "für",
    "and": "und",
    "complete": "vollständige",
    "balanced": "ausgewogene",
    "nutrition": "Ernährung",
    "bag": "Beutel",
    "grain-free": "getreidefrei",
    # A real model translates a planted instruction too; so does the simulator.
    "ignore": "ignoriere",
    "disregard": "missachte",
    "previous": "vorherige",
    "instructions": "Anweisungen",
}

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_TAG = re.compile(r"<[^>]*>")
_LOCALE = re.compile(r"\b[a-z]{2}_[A-Z]{2}\b")
_PRODUCT = re.compile(r"<product>(.*?)</product>", re.S | re.I)
_FIELD_LINE = re.compile(r"^\s*([A-Za-z_][\w@.\-]*)\s*:\s?(.*)$")
_FIELD_PREFIX = re.compile(r"^[A-Za-z_][\w@.\-]*:\s*")
_SEGMENT_BREAK = re.compile(r"<[^>]*>|\n|(?<=[.!?])\s+")
_CLAUSE_BREAK = re.compile(r"[,;]\s+")
_SKU = re.compile(r"\b[A-Z]{2,}-\d+\b")
_INJECTION = re.compile(
    r"(?:(?:ignore|disregard)\s+(?:all\s+)?(?:the\s+)?(?:previous|prior|above|earlier)\s+"
    r"instructions?[\s,.;:]*(?:and\s+|then\s+)?)?"
    r"\bset\s+(?:the\s+)?(?P<attr>[A-Za-z_][\w\-]*)\s+(?:to|=|as)\s+"
    r"(?:\"(?P<dq>[^\"]+)\"|'(?P<sq>[^']+)'|(?P<word>[\w\-]+))",
    re.I,
)
_GENERIC_ALTERNATIVES = ('"', " ", ",", "the", ".", "\n")


def count_tokens(text: str) -> int:
    """The simulator's token count: one token per started four characters."""
    return math.ceil(len(text) / 4)


def split_tokens(text: str) -> list[str]:
    """Split into runs of whitespace, words, and single punctuation characters.

    ``"".join(split_tokens(text)) == text`` always holds.
    """
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Span:
    """A piece of the answer with one certainty; ``alternatives`` are the other things
    the model could have written instead of its first token (e.g. the other enum values)."""

    text: str
    certainty: Certainty
    alternatives: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]

    def as_json(self, top_n: int) -> dict[str, Any]:
        def entry(token: str, logprob: float) -> dict[str, Any]:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        return {
            **entry(self.token, self.logprob),
            "top_logprobs": [entry(*t) for t in self.top][:top_n],
        }


@dataclass(frozen=True)
class Answer:
    """What the model writes: ``content`` is exactly the concatenation of ``spans``."""

    spans: tuple[Span, ...]

    @property
    def content(self) -> str:
        return "".join(s.text for s in self.spans)

    def logprobs(self) -> list[TokenLogprob]:
        """One entry per token; joined, the tokens are exactly :attr:`content`."""
        out: list[TokenLogprob] = []
        for span in self.spans:
            p = PROBABILITY[span.certainty]
            for i, token in enumerate(split_tokens(span.text)):
                others = span.alternatives if i == 0 and span.alternatives else ()
                others = others or _GENERIC_ALTERNATIVES
                others = tuple(o for o in others if o != token)
                rest = math.log((1 - p) / (len(others) + 1))
                top = ((token, LOGPROB[span.certainty]), *((o, rest) for o in others))
                out.append(TokenLogprob(token, LOGPROB[span.certainty], top))
        return out

    def truncated(self, max_chars: int) -> Answer:
        """The first ``max_chars`` characters (cut at a token boundary), as when a
        completion hits ``max_tokens``."""
        spans: list[Span] = []
        left = max_chars
        for span in self.spans:
            kept = ""
            for token in split_tokens(span.text):
                if len(token) > left:
                    left = 0
                    break
                kept += token
                left -= len(token)
            if kept:
                spans.append(Span(kept, span.certainty, span.alternatives))
            if left <= 0:
                break
        return Answer(tuple(spans))


@dataclass(frozen=True)
class Prompt:
    """The parts of a chat request the model reads."""

    system: str
    user: str
    product: str

    @classmethod
    def from_messages(cls, messages: Sequence[Mapping[str, Any]]) -> Prompt:
        system = "\n".join(
            message_text(m) for m in messages if m.get("role") in ("system", "developer")
        )
        users = [message_text(m) for m in messages if m.get("role") == "user"]
        with_block = [u for u in users if _PRODUCT.search(u)]
        user = with_block[-1] if with_block else (users[-1] if users else "")
        block = _PRODUCT.search(user)
        return cls(system=system, user=user, product=(block.group(1) if block else user).strip())

    @property
    def target_locale(self) -> str | None:
        """The locale to translate to, when the user message asks for a translation."""
        if "translate" not in self.user.lower():
            return None
        outside = _PRODUCT.sub(" ", self.user)
        found = _LOCALE.search(outside) or _LOCALE.search(self.user)
        return found.group(0) if found else None


def message_text(message: Mapping[str, Any]) -> str:
    """A message's text, whether ``content`` is a string or a list of text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def find_schema(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` that looks like a JSON schema (JSON mode prompts
    often embed the schema in the system message)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and ("properties" in value or value.get("type") == "object"):
            return value
    return None


def product_fields(product: str) -> dict[str, str]:
    """Fields of a product block, keys lower-cased: a JSON object (top-level scalars plus a
    ``values`` list of ``{attribute, locale, value}``) or ``field: value`` lines, where
    lines without a ``field:`` prefix continue the previous field."""
    try:
        data = json.loads(product)
    except ValueError:
        data = None
    fields: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str | int | float | bool) and value is not None:
                fields[str(key).lower()] = str(value)
        for item in data.get("values") or []:
            if isinstance(item, dict) and item.get("value") is not None:
                name = item.get("attribute") or item.get("field") or item.get("code")
                if name:
                    locale = item.get("locale")
                    key = f"{name}@{locale}" if locale else str(name)
                    fields.setdefault(key.lower(), str(item["value"]))
        return fields
    current: str | None = None
    for line in product.splitlines():
        match = _FIELD_LINE.match(line)
        if match:
            current = match.group(1).lower()
            fields[current] = match.group(2).strip()
        elif current is not None and line.strip():
            fields[current] = f"{fields[current]}\n{line.strip()}".strip()
    return fields


def translate(text: str, locale: str) -> str:
    """``[locale] `` + ``text`` with :data:`TRANSLATIONS` applied outside HTML tags."""
    parts = re.split(r"(<[^>]*>)", text)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"[\w\-]+", _translate_word, parts[i])
    return f"[{locale}] " + "".join(parts)


def _translate_word(match: re.Match[str]) -> str:
    word = match.group(0)
    target = TRANSLATIONS.get(word.lower())
    if target is None:
        return word
    return target[0].upper() + target[1:] if word[0].isupper() else target


@dataclass(frozen=True)
class Injection:
    attribute: str
    value: str
    sentence: str


@dataclass(frozen=True)
class Decision:
    """How the model settled one attribute (an enum property or an object's ``value``)."""

    attribute: str
    value: Any
    how: Literal["found", "hedged", "injected", "composed", "guessed", "absent"]
    evidence: str | None = None
    quote: str | None = None
    note: str | None = None  # how a composed value was written

    @property
    def certainty(self) -> Certainty:
        return "sure" if self.how in ("found", "injected", "composed") else "guess"

    @property
    def reasoning(self) -> str:
        if self.how == "composed":
            return self.note or "Written from the product data."
        if self.how == "found":
            return f"The text says '…{self.quote}…', so {self.attribute} is {self.value}."
        if self.how == "hedged":
            return f"The text only says '…{self.quote}…'; {self.attribute} may be {self.value}."
        if self.how == "injected":
            return f"The text says '{self.evidence}', so {self.attribute} is {self.value}."
        if self.how == "guessed":
            return f"The text does not state the {self.attribute}; {self.value} is a guess."
        return f"The text does not state the {self.attribute}."


@dataclass
class _Leaf:
    value: Any
    certainty: Certainty
    alternatives: tuple[str, ...] = ()
    note: str | None = None  # why a composed string reads as it does


Node = _Leaf | dict[str, "Node"] | list["Node"]


@dataclass
class Model:
    """Fills schemas from one prompt. ``obey_injections`` makes it follow instructions
    found inside the product text; otherwise such sentences are ignored as evidence."""

    prompt: Prompt
    obey_injections: bool = False
    strict: bool = False
    decisions: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fields = product_fields(self.prompt.product)
        self.locale = self.prompt.target_locale
        text = self.prompt.product
        self.injections: list[Injection] = []
        self.searchable = text
        for match in _INJECTION.finditer(text):
            value = match.group("dq") or match.group("sq") or match.group("word")
            start, end = self._segment_around(match.start(), match.end())
            self.injections.append(Injection(match.group("attr"), value, text[start:end]))
            # An instruction is not a fact about the product: blank it for evidence search.
            self.searchable = self.searchable[:start] + " " * (end - start) + self.searchable[end:]
        sku = self.fields.get("sku") or (m.group(0) if (m := _SKU.search(text)) else None)
        self.sku = sku or "the product"
        self.name = self.fields.get("name") or self.fields.get("title") or self.sku

    # -- public entry points ------------------------------------------------------------

    def answer_json(self, schema: Mapping[str, Any], root_name: str = "") -> Answer:
        spans: list[Span] = []
        _emit(self._fill(schema, root_name, schema), spans)
        return Answer(tuple(spans))

    def answer_generic_json(self) -> Answer:
        spans: list[Span] = []
        _emit({"answer": _Leaf(self._text_answer(), "sure")}, spans)
        return Answer(tuple(spans))

    def answer_text(self) -> Answer:
        return Answer((Span(self._text_answer(), "sure"),))

    # -- schema walk --------------------------------------------------------------------

    def _fill(self, schema: Mapping[str, Any], key: str, root: Mapping[str, Any]) -> Node:
        main, nullable = _non_null(schema, root)
        if "const" in main:
            return _Leaf(main["const"], "structural")
        kind = _type_of(main)
        if kind == "object":
            return self._fill_object(main, key, root)
        if kind == "array":
            return self._fill_array(main, key, root)
        if "enum" in main:
            decision = self._decide(key, main["enum"], nullable or None in main["enum"])
            return self._decision_leaf(decision, main["enum"])
        if kind == "string":
            return self._string(key, main)
        if kind in ("number", "integer"):
            return self._number(key, main, kind, self._overall_decision())
        if kind == "boolean":
            raw = self.fields.get(key.lower())
            if raw is not None:
                return _Leaf(raw.strip().lower() in ("1", "true", "yes", "y"), "sure")
            return _Leaf(False, "guess")
        return _Leaf(None, "guess")

    def _fill_object(self, schema: Mapping[str, Any], key: str, root: Mapping[str, Any]) -> Node:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        # The primary property (``value``, else the first enum) is decided first, so its
        # siblings (evidence, reasoning, confidence) can talk about it in any order.
        primary = "value" if "value" in properties else None
        if primary is None:
            primary = next(
                (n for n, s in properties.items() if "enum" in _non_null(s, root)[0]), None
            )
        filled: dict[str, Node] = {}
        decision: Decision | None = None
        if primary is not None:
            main, nullable = _non_null(properties[primary], root)
            attribute = key if primary == "value" else primary
            if "enum" in main:
                decision = self._decide(attribute, main["enum"], nullable or None in main["enum"])
                filled[primary] = self._decision_leaf(decision, main["enum"])
            else:
                node = self._fill(properties[primary], attribute, root)
                filled[primary] = node
                if isinstance(node, _Leaf):
                    decision = self._free_decision(attribute, node)
        for name, sub in properties.items():
            if name in filled:
                continue
            filled[name] = self._sibling(name, sub, decision, root)
        return {name: filled[name] for name in properties}

    def _sibling(
        self,
        name: str,
        schema: Mapping[str, Any],
        decision: Decision | None,
        root: Mapping[str, Any],
    ) -> Node:
        if decision is None:
            return self._fill(schema, name, root)
        main, nullable = _non_null(schema, root)
        lowered = name.lower()
        kind = _type_of(main)
        if kind == "string" and "enum" not in main:
            if "evidence" in lowered or "quote" in lowered:
                text = decision.evidence
                if text is None and not nullable:
                    text = ""
                return _Leaf(text, decision.certainty)
            if any(w in lowered for w in ("reason", "explanation", "rationale")):
                return _Leaf(_fit(decision.reasoning, main.get("maxLength")), decision.certainty)
        if kind in ("number", "integer"):
            return self._number(name, main, kind, decision)
        return self._fill(schema, name, root)

    def _fill_array(self, schema: Mapping[str, Any], key: str, root: Mapping[str, Any]) -> Node:
        items: Mapping[str, Any] = schema.get("items") or {}
        low: int = schema.get("minItems", 0)
        high: int | None = schema.get("maxItems")
        item_main, _ = _non_null(items, root)
        if "enum" in item_main:
            hits = self._occurrences(item_main["enum"])
            leaves: list[Node] = [_Leaf(v, "sure") for _, v in hits]
            leaves += [
                _Leaf(v, "guess") for v in item_main["enum"] if v not in [h for _, h in hits]
            ]
            count = max(low, len(hits))
            return leaves[: count if high is None else min(count, high)]
        count = max(low, 1) if high is None else min(max(low, 1), high)
        singular = key[:-1] if key.endswith("s") else key
        return [self._fill(items, singular, root) for _ in range(count)]

    # -- values ---------------------------------------------------------------------------

    def _decide(self, attribute: str, options: Sequence[Any], nullable: bool) -> Decision:
        choices = [o for o in options if o is not None]
        if self.obey_injections:
            for injection in self.injections:
                if not _names_match(injection.attribute, attribute):
                    continue
                chosen = next(
                    (c for c in choices if str(c).lower() == injection.value.lower()), None
                )
                if chosen is None and not self.strict:
                    chosen = injection.value  # a careless model writes what it was told
                if chosen is not None:
                    decision = Decision(attribute, chosen, "injected", injection.sentence)
                    self.decisions.append(decision)
                    return decision
        hits = self._occurrences(choices)
        if hits:
            start, value = hits[0]
            evidence = self._evidence(start, start + len(str(value)))
            quote = self._quote(evidence, str(value))
            how: Literal["found", "hedged"] = "hedged" if self._hedged(start) else "found"
            decision = Decision(attribute, value, how, evidence, quote)
        elif nullable or not choices:
            decision = Decision(attribute, None, "absent")
        else:
            decision = Decision(attribute, choices[0], "guessed")
        self.decisions.append(decision)
        return decision

    def _decision_leaf(self, decision: Decision, options: Sequence[Any]) -> _Leaf:
        others = tuple(
            json.dumps(o, ensure_ascii=False).strip('"')
            for o in options
            if o is not None and o != decision.value
        )
        return _Leaf(
            decision.value, decision.certainty, others if decision.value is not None else ('"',)
        )

    def _free_decision(self, attribute: str, leaf: _Leaf) -> Decision | None:
        if not isinstance(leaf.value, str) or not leaf.value:
            return None
        if leaf.note is not None:
            return Decision(attribute, leaf.value, "composed", note=leaf.note)
        found = _find_word(self.searchable, leaf.value)
        if found is None:
            return Decision(attribute, leaf.value, "guessed")
        evidence = self._evidence(found, found + len(leaf.value))
        return Decision(attribute, leaf.value, "found", evidence, self._quote(evidence, leaf.value))

    def _overall_decision(self) -> Decision | None:
        if any(d.certainty == "guess" for d in self.decisions):
            return next(d for d in self.decisions if d.certainty == "guess")
        return self.decisions[0] if self.decisions else None

    def _number(
        self, key: str, schema: Mapping[str, Any], kind: str, decision: Decision | None
    ) -> _Leaf:
        lowered = key.lower()
        value: float
        if any(w in lowered for w in ("confidence", "score", "probability", "certainty")):
            sure = decision is None or decision.certainty == "sure"
            value = CONFIDENCE_FOUND if sure else CONFIDENCE_GUESSED
            certainty: Certainty = "sure" if sure else "guess"
        else:
            raw = self.fields.get(lowered)
            try:
                value, certainty = float(str(raw)), "sure"
            except ValueError:
                value, certainty = float(schema.get("minimum", 0)), "guess"
        value = max(value, float(schema.get("minimum", -math.inf)))
        value = min(value, float(schema.get("maximum", math.inf)))
        return _Leaf(int(value) if kind == "integer" else value, certainty)

    def _string(self, key: str, schema: Mapping[str, Any]) -> _Leaf:
        limit: int | None = schema.get("maxLength") or self._asked_limit(key)
        lowered = key.lower()
        if self.locale is not None:
            if lowered == "locale":
                return _Leaf(self.locale, "sure")
            base = lowered.split("@", 1)[0]
            source = self.fields.get(lowered) or self.fields.get(base)
            what = f"the {key} text"
            if source is None:
                source = next(iter(self.fields.values())) if len(self.fields) == 1 else None
                what = "the product text"
            text = _fit(translate(source or self.prompt.product, self.locale), limit)
            note = f"Translated {what} into {self.locale} word by word, keeping HTML tags."
            return _Leaf(text, "sure", note=note)
        if "title" in lowered:
            title, extras = self._title()
            using = f" and the stated values {', '.join(extras)}" if extras else ""
            return _Leaf(_fit(title, limit), "sure", note=f"Built from the product name{using}.")
        if "description" in lowered:
            note = "Built from the product name and description, keeping its HTML."
            return _Leaf(_fit(self._description(), limit), "sure", note=note)
        return _Leaf(_fit(f"{key} for {self.sku}", limit), "guess")

    def _asked_limit(self, key: str) -> int | None:
        """A length the user message asks for, as in ``- name (at most 150 characters)``."""
        asked = re.search(
            rf"(?<!\w){re.escape(key)}\b[^\n]*?at most (\d+) char",
            _PRODUCT.sub("", self.prompt.user),
        )
        return int(asked.group(1)) if asked else None

    def _title(self) -> tuple[str, list[str]]:
        product = self.prompt.product.lower()
        extras = [
            str(d.value)
            for d in self.decisions
            if d.value is not None and _find_word(product, str(d.value).lower()) is not None
        ]
        # Capitalised field names in the block are attributes (e.g. ``Flavor: Chicken``).
        extras += [v for k, v in self._capitalised_fields() if v not in extras]
        title = f"{self.name} \u2013 {', '.join(extras)}" if extras else self.name
        return title, extras

    def _capitalised_fields(self) -> Iterable[tuple[str, str]]:
        for line in self.prompt.product.splitlines():
            match = _FIELD_LINE.match(line)
            if match and match.group(1)[0].isupper() and match.group(2).strip():
                yield match.group(1), match.group(2).strip()

    def _description(self) -> str:
        text = self.fields.get("description") or self.prompt.product
        lead = re.match(r"(\s*(?:<[^>]*>\s*)*)", text)
        opening = lead.group(1) if lead else ""
        return f"{opening}{self.name}: {text[len(opening) :]}"

    def _text_answer(self) -> str:
        if self.locale is not None:
            source = self.fields.get("description") or self.prompt.product
            return translate(source, self.locale)
        return self._description()

    # -- evidence -------------------------------------------------------------------------

    def _hedged(self, start: int) -> bool:
        """One of the two words before a value hedges it (``maybe chicken``): unsure."""
        before = self.searchable[max(0, start - 40) : start].lower().split()[-2:]
        return any(word.strip(",.;:") in HEDGES for word in before)

    def _occurrences(self, options: Sequence[Any]) -> list[tuple[int, Any]]:
        hits = [(_find_word(self.searchable, str(o)), o) for o in options if o is not None]
        return sorted(((i, o) for i, o in hits if i is not None), key=lambda h: h[0])

    def _segments(self) -> list[tuple[int, int]]:
        """Sentences of the product text (split at tags, newlines, sentence ends), plus
        their comma/semicolon clauses of three words or more, as (start, end) offsets."""
        text = self.prompt.product
        bounds: list[tuple[int, int]] = []
        last = 0
        for brk in _SEGMENT_BREAK.finditer(text):
            bounds.append((last, brk.start()))
            last = brk.end()
        bounds.append((last, len(text)))
        sentences: list[tuple[int, int]] = []
        clauses: list[tuple[int, int]] = []
        for start, end in bounds:
            prefix = _FIELD_PREFIX.match(text, start, end)
            start, end = _strip(text, prefix.end() if prefix else start, end)
            if start >= end:
                continue
            sentences.append((start, end))
            clause_start = start
            for brk in _CLAUSE_BREAK.finditer(text, start, end):
                clauses.append(_strip(text, clause_start, brk.start()))
                clause_start = brk.end()
            if clause_start != start:
                clauses.append(_strip(text, clause_start, end))
        return sentences + [(s, e) for s, e in clauses if len(text[s:e].split()) >= 3]

    def _evidence(self, start: int, end: int) -> str:
        text = self.prompt.product
        holding = [(s, e) for s, e in self._segments() if s <= start and end <= e]
        if not holding:
            return text[start:end]
        s, e = min(holding, key=lambda se: (se[1] - se[0], se[0]))
        return text[s:e]

    def _segment_around(self, start: int, end: int) -> tuple[int, int]:
        holding = [(s, e) for s, e in self._segments() if s <= start and end <= e]
        return max(holding, key=lambda se: se[1] - se[0]) if holding else (start, end)

    @staticmethod
    def _quote(evidence: str, value: str) -> str:
        at = _find_word(evidence, value)
        if at is None:
            return value
        before = evidence[:at].rstrip().split()
        return (before[-1] + " " if before else "") + evidence[at : at + len(value)]


def _names_match(said: str, attribute: str) -> bool:
    said, attribute = said.lower(), attribute.lower()
    return said == attribute or said in re.split(r"[\W_]+", attribute)


def _find_word(text: str, word: str) -> int | None:
    if not word:
        return None
    found = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.I)
    return found.start() if found else None


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _fit(text: str, limit: int | None) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, keeping HTML well formed
    (a partial tag is dropped and open tags are closed; if that cannot fit, tags go)."""
    if limit is None or len(text) <= limit:
        return text
    cut = text[:limit]
    if not text[limit].isspace() and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    while True:
        cut = re.sub(r"<[^>]*$", "", cut).rstrip(" ,;:\u2013-")
        open_tags: list[str] = []
        for tag in re.finditer(r"<(/?)(\w+)[^>]*?(/?)>", cut):
            if tag.group(1) and open_tags and open_tags[-1] == tag.group(2):
                open_tags.pop()
            elif not tag.group(1) and not tag.group(3):
                open_tags.append(tag.group(2))
        closing = "".join(f"</{name}>" for name in reversed(open_tags))
        if len(cut) + len(closing) <= limit:
            return cut + closing
        if " " not in cut:
            return _TAG.sub("", text)[:limit]
        cut = cut.rsplit(" ", 1)[0]


def _non_null(schema: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The schema with ``$ref`` resolved and null options removed, and whether null is allowed."""
    schema = _resolve(schema, root)
    for combinator in ("anyOf", "oneOf"):
        options = schema.get(combinator)
        if isinstance(options, list):
            resolved = [_resolve(o, root) for o in options]
            rest = [o for o in resolved if o.get("type") != "null"]
            nullable = len(rest) < len(resolved)
            if rest:
                inner, inner_null = _non_null(rest[0], root)
                return inner, nullable or inner_null
            return {"type": "null"}, True
    kind = schema.get("type")
    if isinstance(kind, list):
        rest_types = [t for t in kind if t != "null"]
        merged = {**schema, "type": rest_types[0] if rest_types else "null"}
        return merged, "null" in kind
    return schema, False


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while isinstance(schema.get("$ref"), str) and seen < 32:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **extra}
        seen += 1
    return schema


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string" if "enum" in schema else "null"


def _emit(node: Node, out: list[Span]) -> None:
    """Serialise like ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``."""
    if isinstance(node, dict):
        out.append(Span("{", "structural"))
        for i, (key, value) in enumerate(node.items()):
            out.append(
                Span(("," if i else "") + json.dumps(key, ensure_ascii=False) + ":", "structural")
            )
            _emit(value, out)
        out.append(Span("}", "structural"))
    elif isinstance(node, list):
        out.append(Span("[", "structural"))
        for i, value in enumerate(node):
            if i:
                out.append(Span(",", "structural"))
            _emit(value, out)
        out.append(Span("]", "structural"))
    else:
        text = json.dumps(node.value, ensure_ascii=False)
        if isinstance(node.value, str):
            out.append(Span('"', "structural"))
            if len(text) > 2:
                out.append(Span(text[1:-1], node.certainty, node.alternatives))
            out.append(Span('"', "structural"))
        else:
            out.append(Span(text, node.certainty, node.alternatives))
