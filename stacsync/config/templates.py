"""Config templates (collection descriptions, item titles), parsed and filled without str.format.

Placeholders are plain names from a fixed list, format specs are allow-listed, output is bounded.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timezone
from typing import Any

TEXT = "text"
NUMBER = "number"
DATE = "date"

MAX_SPEC = 200  # characters in one format spec
MAX_WIDTH = 200  # format width and precision
MAX_TITLE = 500  # characters in a filled item title
MAX_DESCRIPTION = 10_000  # characters in a filled collection description
ELLIPSIS = "…"

# strftime directives a date spec may use: portable ones that print one part of a date.
DATE_DIRECTIVES = "aAbBdmyYjHIMSpUWwuGVzZ%"

_BRACES = "write {{ and }} for a literal brace"
# Python's format-spec mini-language, minus nested fields: [[fill]align][sign][z][#][0]
# [width][grouping][.precision][type]. Types are checked per kind below.
_SPEC = re.compile(
    r"(?:(?P<fill>[^{}\x00-\x1f\x7f])?(?P<align>[<>=^]))?(?P<sign>[-+ ])?z?#?0?"
    r"(?P<width>[0-9]+)?[,_]?(?:\.(?P<precision>[0-9]+))?(?P<type>[A-Za-z%])?"
)
_TYPES = {NUMBER: "bdoxXeEfFgGn%", TEXT: "s"}
_SPEC_HELP = {
    NUMBER: "a number format such as `,`, `>6` or `.1f`",
    TEXT: "a text format such as `>20` or `.40`",
}
_PROPERTY = re.compile(r"properties\[(?P<key>[^\[\]{}\x00-\x1f\x7f]+)\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SAMPLES: dict[str, Any] = {TEXT: "x", NUMBER: 1234, DATE: datetime(2000, 1, 2, 3, 4, tzinfo=UTC)}


@dataclass(frozen=True)
class Fields:
    """What one kind of template may say, and how long its filled text may be.

    `kinds` pairs each placeholder name with its kind (TEXT, NUMBER or DATE); `properties`
    allows `{properties[NAME]}`; `collapse` turns each run of whitespace into one space.
    """

    kinds: tuple[tuple[str, str], ...]
    limit: int
    properties: bool = False
    collapse: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _kind in self.kinds)

    def known(self) -> str:
        """The placeholders, as a person would write them: `{id}, {date}, ...`."""
        names = [f"{{{name}}}" for name in self.names]
        return ", ".join(names + (["{properties[NAME]}"] if self.properties else []))


DESCRIPTION = Fields(
    (("items", NUMBER), ("start", DATE), ("end", DATE), ("id", TEXT), ("title", TEXT)),
    limit=MAX_DESCRIPTION,
)
ITEM_TITLE = Fields(
    (("id", TEXT), ("date", DATE), ("collection", TEXT)),
    limit=MAX_TITLE,
    properties=True,
    collapse=True,
)


@dataclass(frozen=True)
class Placeholder:
    """One checked `{...}`: a field (or `properties` with a key), its kind and format spec."""

    name: str
    kind: str
    spec: str = ""
    key: str | None = None  # the NAME of {properties[NAME]}


@dataclass(frozen=True)
class Template:
    """A checked template: literal text and placeholders, filled by `fill`."""

    text: str
    fields: Fields
    parts: tuple[str | Placeholder, ...]

    @classmethod
    def parse(cls, text: str, fields: Fields) -> Template:
        """The template `text` for `fields`; ValueError says what is wrong and how to fix it."""
        return _parse(text, fields)

    @classmethod
    def literal(cls, text: str, fields: Fields) -> Template:
        """`text` as written, braces and all (still bounded and, for titles, collapsed)."""
        return cls(text, fields, (text,))

    def fill(self, values: Mapping[str, Any]) -> str:
        """The text with each placeholder filled from `values` (by name; `properties`: a mapping).

        A missing or ill-typed value fills in as empty (an unknown date as `unknown`); the
        result is at most `fields.limit` characters, cut with a trailing "…".
        """
        out = [part if isinstance(part, str) else self._render(part, values) for part in self.parts]
        text = "".join(out)
        if self.fields.collapse:
            text = " ".join(text.split())
        return _cut(text, self.fields.limit)

    def _render(self, part: Placeholder, values: Mapping[str, Any]) -> str:
        if part.key is not None:
            properties = values.get("properties")
            value = properties.get(part.key) if isinstance(properties, Mapping) else None
        else:
            value = values.get(part.name)
        if part.kind == DATE:
            if value is None:
                return "unknown"  # e.g. the dates of an empty collection
            if not _plain_date(value):
                return ""
        elif part.kind == NUMBER:
            if not isinstance(value, int) or isinstance(value, bool):
                return ""
            value = int.__index__(value)  # a plain int: no subclass's __format__ is called
        else:
            text = _plain_text(value)
            if text is None:
                return ""  # None, dicts, lists: nothing to show
            value = self._bounded(text)
        try:
            return _apply(value, part)
        except (ValueError, OverflowError):  # checked at parse; kept as a last resort
            return self._bounded(value.isoformat() if isinstance(value, date) else str(value))

    def _bounded(self, text: str) -> str:
        # A value far longer than the whole result is cut before formatting; a little slack
        # keeps the final cut (and its "…") where it would have been.
        cap = self.fields.limit + 2
        if len(text) <= cap:
            return text
        return (" ".join(text.split()) if self.fields.collapse else text)[:cap]


def _plain_text(value: Any) -> str | None:
    """The text of a str, int, float or bool (through the base type's own method), else None."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)
    return None


def _plain_date(value: Any) -> bool:
    """True for a date or datetime proper (a fixed-offset zone at most): strftime is theirs."""
    if type(value) is date:
        return True
    return type(value) is datetime and (value.tzinfo is None or type(value.tzinfo) is timezone)


def _apply(value: Any, part: Placeholder) -> str:
    if part.kind == DATE:
        return value.strftime(part.spec) if part.spec else str(value)
    return format(value, part.spec)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


@functools.lru_cache(maxsize=256)
def _parse(text: str, fields: Fields) -> Template:
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"{exc}; {_BRACES}") from None
    parts: list[str | Placeholder] = []
    for literal, name, spec, conversion in pieces:
        if literal:
            parts.append(literal)
        if name is None:
            continue
        parts.append(_placeholder(name, spec or "", conversion, fields))
    return Template(text, fields, tuple(parts))


def _placeholder(name: str, spec: str, conversion: str | None, fields: Fields) -> Placeholder:
    bang = f"!{conversion}" if conversion else ""
    shown = "{" + name + bang + (f":{spec}" if spec else "") + "}"
    part = _field(name, fields)
    if conversion is not None:
        raise ValueError(f"{shown}: conversions (!r, !s, !a) are not allowed")
    if "{" in spec or "}" in spec:
        raise ValueError(f"{shown}: a placeholder inside a format spec is not allowed")
    problem = _spec_problem(spec, part.kind)
    if problem is None:
        try:
            _apply(_SAMPLES[part.kind], Placeholder(part.name, part.kind, spec))
        except (ValueError, OverflowError) as exc:
            problem = str(exc)
    if problem is not None:
        raise ValueError(f"cannot be filled in: {shown}: {problem}")
    return Placeholder(part.name, part.kind, spec, part.key)


def _field(name: str, fields: Fields) -> Placeholder:
    kinds = dict(fields.kinds)
    if name in kinds:
        return Placeholder(name, kinds[name])
    if fields.properties:
        found = _PROPERTY.fullmatch(name)
        if found:
            return Placeholder("properties", TEXT, key=found["key"])
        if name == "properties":
            raise ValueError("{properties} needs a property name: {properties[NAME]}")
    unknown = f"unknown placeholder {{{name}}}"
    known = f"known: {fields.known()}"
    root = re.split(r"[.\[]", name, maxsplit=1)[0]
    if root in kinds or (fields.properties and root == "properties"):
        if name[len(root)] == ".":
            why = "attribute access is not allowed; placeholders are plain names"
        elif root == "properties":
            why = "only {properties[NAME]}, with a plain property name, is allowed"
        else:
            why = "indexing is not allowed; placeholders are plain names"
        raise ValueError(f"{unknown}: {why} ({known})")
    raise ValueError(f"{unknown} ({known}); {_BRACES}")


def _spec_problem(spec: str, kind: str) -> str | None:
    """What is wrong with `spec` for a value of `kind`, or None."""
    if len(spec) > MAX_SPEC:
        return f"the format spec is {len(spec)} characters, over {MAX_SPEC}"
    if _CONTROL.search(spec):
        return "a format spec cannot hold control characters"
    if kind == DATE:
        return _strftime_problem(spec)
    found = _SPEC.fullmatch(spec)
    if found is None:
        return f"{spec!r} is not {_SPEC_HELP[kind]}"
    for what in ("width", "precision"):
        if found[what] is not None and int(found[what]) > MAX_WIDTH:
            return f"format {what} {int(found[what])} is over {MAX_WIDTH}"
    kind_type = found["type"]
    if kind_type is not None and kind_type not in _TYPES[kind]:
        return f"format type {kind_type!r} does not apply here ({_SPEC_HELP[kind]})"
    return None


def _strftime_problem(spec: str) -> str | None:
    allowed = " ".join(f"%{d}" for d in DATE_DIRECTIVES)
    index = 0
    while index < len(spec):
        if spec[index] != "%":
            index += 1
            continue
        directive = spec[index + 1 : index + 2]
        if not directive:
            return f"a lone % ends the date format (%% is a percent sign; allowed: {allowed})"
        if directive not in DATE_DIRECTIVES:
            return f"%{directive} is not an allowed date directive (allowed: {allowed})"
        index += 2
    return None


DESCRIPTION_FIELDS = DESCRIPTION.names


def check_item_title(text: str) -> None:
    """ValueError unless `text` is an item title template stacsync can fill in."""
    Template.parse(text, ITEM_TITLE)


def check_description(text: str) -> None:
    """ValueError unless `text` is a description template stacsync can fill in."""
    Template.parse(text, DESCRIPTION)
