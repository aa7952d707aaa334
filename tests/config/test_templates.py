"""Config templates are filled by stacsync.config.templates, never str.format: no traversal."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stacsync.catalog.collections import CollectionInput, render_collection
from stacsync.catalog.links import Links
from stacsync.catalog.titles import fill_item_title
from stacsync.config.collection_keys import DEFAULT_ITEM_TITLE
from stacsync.config.load import load_settings
from stacsync.config.templates import (
    DESCRIPTION,
    ITEM_TITLE,
    MAX_DESCRIPTION,
    MAX_TITLE,
    Fields,
    Template,
)
from stacsync.core.errors import ConfigError
from stacsync.demo import demo_config_toml, make_demo_tree
from stacsync.pipeline.sync import rescan

SECRET = "s3cr3t-canary-7f1c"  # stands for IRODS_PASSWORD

BASE = """
[source]
path = "data"
[output]
path = "out"
[[collection]]
id = "c"
title = "Plots"
match = '^(?P<item>.+)$'
"""


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("IRODS_PASSWORD", SECRET)
    monkeypatch.setenv("STACSYNC_TEMPLATE_CANARY", SECRET)
    return SECRET


def _load_error(tmp_path: Path, key: str, text: str) -> str:
    path = tmp_path / "stacsync.toml"
    path.write_text(BASE + f"{key} = {json.dumps(text)}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


HOSTILE_PROPERTIES: dict[str, Any] = {
    "sensor": "P4 {id.__class__} {{x}} %s {0}",
    "count": 3,
    "ratio": 0.5,
    "flag": True,
    "nested": {"a": "{id}"},
    "listed": ["{id}"],
    "none": None,
}


def _title_values(**changes: Any) -> dict[str, Any]:
    values = {
        "id": "m{1}{id}",
        "date": datetime(2019, 6, 4, 11, 59, 40, tzinfo=UTC),
        "collection": "Plot {A}",
        "properties": HOSTILE_PROPERTIES,
    }
    return {**values, **changes}


def _description_values(**changes: Any) -> dict[str, Any]:
    values = {
        "items": 10_000,
        "start": date(2019, 6, 3),
        "end": None,
        "id": "c{x}",
        "title": "Plot {A} {items}",
    }
    return {**values, **changes}


# ---------------------------------------------------------------- the exploits, refused at load


@pytest.mark.parametrize(
    ("key", "text", "reason"),
    [
        (
            "item_title",
            "{properties.__missing__.__globals__[os].environ}",
            "attribute access is not allowed",
        ),
        ("item_title", "{id.__class__.__mro__}", "attribute access is not allowed"),
        ("item_title", "{properties[__builtins__][open]}", "only {properties[NAME]}"),
        ("item_title", "{properties[a].b}", "only {properties[NAME]}"),
        ("item_title", "{id[0]}", "indexing is not allowed"),
        ("item_title", "{id!r}", "conversions (!r, !s, !a) are not allowed"),
        ("item_title", "{date:{id}}", "a placeholder inside a format spec is not allowed"),
        ("item_title", "{id:>999999999}", "format width 999999999 is over 200"),
        ("item_title", "{id:.1000}", "format precision 1000 is over 200"),
        ("item_title", "{date:%c}", "%c is not an allowed date directive"),
        ("item_title", "{properties}", "{properties[NAME]}"),
        ("description", "{items:>999999999}", "format width 999999999 is over 200"),
        ("description", "{start:" + "%Y" * 101 + "}", "over 200"),
        ("description", "{id.__class__}", "attribute access is not allowed"),
        ("description", "{title.__class__.__mro__}", "attribute access is not allowed"),
        ("description", "{properties[x]}", "unknown placeholder {properties[x]}"),
        ("description", "{items!a}", "conversions"),
        ("description", "{items:c}", "format type 'c' does not apply here"),
        ("description", "{item}", "unknown placeholder {item} (known: {items}, {start}"),
    ],
)
def test_exploits_are_refused_at_load_naming_the_key(
    tmp_path: Path, secret: str, key: str, text: str, reason: str
) -> None:
    message = _load_error(tmp_path, key, text)
    assert message.startswith(f"collection[0].{key}: "), message
    assert reason in message, message
    assert secret not in message


def test_the_exploits_fail_to_parse_and_as_text_are_only_text(secret: str) -> None:
    exploits = [
        "{properties.__missing__.__globals__[os].environ}",
        "{id.__class__.__mro__}",
        "{properties[__builtins__][open]}",
        "{date.__class__.__init__.__globals__}",
    ]
    for text in exploits:
        with pytest.raises(ValueError):
            Template.parse(text, ITEM_TITLE)
        with pytest.raises(ValueError):
            Template.parse(text, DESCRIPTION)
        # Settings built in code skip the check: such a template is published as written.
        title = fill_item_title(text, "x", "2019-06-04T11:59:40Z", "c", HOSTILE_PROPERTIES)
        assert title == text and secret not in title


def test_the_description_exploits_are_not_filled_at_render(secret: str) -> None:
    for text in ("{items:>999999999}", "{title.__class__.__init__.__globals__}"):
        collection = CollectionInput(
            id="c",
            title="T",
            description=text,
            license="other",
            keywords=(),
            providers=(),
            bbox=(0.0, 0.0, 1.0, 1.0),
            start="2019-06-03T10:00:00Z",
            end=None,
            item_ids=("a",),
        )
        coll = render_collection(collection, Links(None))
        assert coll["description"] == text  # as written: refused by the check, never filled


# ---------------------------------------------------------------- what is accepted


ACCEPTED_TITLES = [
    DEFAULT_ITEM_TITLE,
    "Mission {id}, {properties[sensor]} {date:%B %Y} ({collection})",
    "{properties[count]:>5}|{properties[ratio]}|{properties[flag]}|{properties[nested]}",
    "{properties[listed]}{properties[none]}{properties[missing]} {{literal}} {id:.3}",
    "{date} {date:%A %d %b %y, %H:%M:%S %Z %z %j %U %W %w %u %G-W%V %I %p %%}",
    "{properties[sci:citation]:*^40.12}",
]
ACCEPTED_DESCRIPTIONS = [
    "{items} drone missions flown from {start} to {end}.",
    "{items:,} flights, {start:%B %Y}–{end:%Y}. {{JSON}} braces.",
    "{items:+08,d} {items:_x} {items:#o} {items:.2e} {items:.1%} {items:=^+12,}",
    "{title:>30.5} / {id:^9}",
    "{start:%d %B %Y}",
]


@pytest.mark.parametrize("text", ACCEPTED_TITLES)
def test_accepted_titles_fill_without_the_environment(secret: str, text: str) -> None:
    title = Template.parse(text, ITEM_TITLE).fill(_title_values())
    assert secret not in title and len(title) <= MAX_TITLE
    assert title == " ".join(title.split())


@pytest.mark.parametrize("text", ACCEPTED_DESCRIPTIONS)
def test_accepted_descriptions_fill_without_the_environment(secret: str, text: str) -> None:
    description = Template.parse(text, DESCRIPTION).fill(_description_values())
    assert secret not in description and len(description) <= MAX_DESCRIPTION


def test_documented_forms_keep_working() -> None:
    title = Template.parse(DEFAULT_ITEM_TITLE, ITEM_TITLE)
    assert title.fill(_title_values(id="000421")) == "000421 (2019-06-04)"
    custom = Template.parse("{id} {properties[sensor]} {date:%B %Y} ({collection})", ITEM_TITLE)
    values = _title_values(id="7", collection="OFO")
    assert custom.fill({**values, "properties": {"sensor": "P4"}}) == "7 P4 June 2019 (OFO)"
    assert custom.fill({**values, "properties": {}}) == "7 June 2019 (OFO)"  # no double space
    text = "{items:,} missions, {start:%B %Y} to {end}; {{braces}} {title}"
    assert Template.parse(text, DESCRIPTION).fill(_description_values()) == (
        "10,000 missions, June 2019 to unknown; {braces} Plot {A} {items}"
    )


def test_property_values_render_as_plain_text_only(secret: str) -> None:
    class Sneaky(str):
        def __str__(self) -> str:
            return os.environ.get("IRODS_PASSWORD", "")

        def __format__(self, spec: str) -> str:
            return os.environ.get("IRODS_PASSWORD", "")

    class Leaky:
        def __str__(self) -> str:
            return os.environ.get("IRODS_PASSWORD", "")

    template = Template.parse("<{properties[a]}|{properties[b]}|{properties[c]}>", ITEM_TITLE)
    props = {"a": Sneaky("plain"), "b": Leaky(), "c": {"k": "v"}}
    assert template.fill(_title_values(properties=props)) == "<plain||>"
    assert template.fill(_title_values(properties=None)) == "<||>"


def test_filled_text_is_bounded(secret: str) -> None:
    huge = "x" * 1_000_000
    title = fill_item_title(
        "{properties[big]} {id}", "id", "2019-06-04T00:00:00Z", "c", {"big": huge}
    )
    assert len(title) == MAX_TITLE and title.endswith("…")
    spaced = Template.parse("{properties[big]}", ITEM_TITLE).fill(
        _title_values(properties={"big": "a" + " " * 10_000 + "b"})
    )
    assert spaced == "a b"
    many = Template.parse("{title:>200}" * 500, DESCRIPTION).fill(_description_values())
    assert len(many) == MAX_DESCRIPTION and many.endswith("…")
    literal = Template.literal("{" * 50_000, DESCRIPTION).fill({})
    assert len(literal) == MAX_DESCRIPTION


def test_unchecked_values_never_raise() -> None:
    template = Template.parse("{items:,} {start:%Y} {id:>4} {title}", DESCRIPTION)
    odd = {"items": "many", "start": "2019", "id": None, "title": ["x"]}
    assert template.fill(odd) == "   "
    assert template.fill({}) == " unknown  "


# ---------------------------------------------------------------- a whole pass


def test_a_rescan_with_hostile_looking_text_completes_without_the_secret(
    tmp_path: Path, secret: str
) -> None:
    tree = make_demo_tree(tmp_path / "data", missions=2, raster_size=32, points=50)
    for path in tree.root.rglob("*"):  # older than the racy-mtime window
        if path.is_file():
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 60 * 10**9))
    text = demo_config_toml(tree, tmp_path / "catalog", tmp_path / "m.db")
    old_title = 'title = "Open Forest Observatory drone missions (demo)"'
    old_description = (
        'description = "Orthomosaics, surface models and point clouds, one item per drone mission."'
    )
    assert old_title in text and old_description in text
    hostile_title = "Plots {id.__class__} {0} %s {{"
    description = "{title}: {items:,} missions {start:%B %Y}–{end:%Y} {{not a placeholder}}"
    item_title = "{id} {properties[note]} {properties[sensor_name]:.12} ({collection}) {date:%Y}"
    text = text.replace(old_title, f"title = {json.dumps(hostile_title)}")
    text = text.replace(
        old_description,
        f"description = {json.dumps(description)}\nitem_title = {json.dumps(item_title)}",
    )
    text += 'note = "{properties.__class__} {id:>999999999} }{"\n'
    config = tmp_path / "stacsync.toml"
    config.write_text(text, encoding="utf-8")

    summary = rescan(config)
    assert summary.errors == 0 and summary.items_written == 2
    out = tmp_path / "catalog"
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    collection = json.loads((out / "ofo-missions" / "collection.json").read_text())
    assert collection["description"].startswith(f"{hostile_title}: 2 missions ")
    assert collection["description"].endswith(" {not a placeholder}")
    for mission in tree.missions:
        item = json.loads((out / "ofo-missions" / mission / f"{mission}.json").read_text())
        title = item["properties"]["title"]
        assert title.startswith(f"{mission} {{properties.__class__}} {{id:>999999999}} }}{{ ")
        assert title.endswith(f"({hostile_title}) {item['properties']['datetime'][:4]}")
        assert len(title) <= MAX_TITLE


# ---------------------------------------------------------------- fuzzing the parser

NAMES = ["items", "start", "end", "id", "title", "date", "collection", "properties", "0", ""]
TAILS = [
    "",
    "",
    "",
    "",
    "",
    "[sensor]",
    "[count]",
    "[nested]",
    "[sci:citation]",
    ".__class__",
    "[0]",
    "[os]",
]
TAILS += [".__missing__.__globals__[os].environ", "[__builtins__][open]", "[sensor].x", "["]
SPEC_BITS = [">", "<", "^", "=", "*", "+", "-", " ", "z", "#", "0", ",", "_", "9", "200"]
SPEC_BITS += ["201", "999999999", ".", ".2", "f", "d", "s", "x", "c", "n", "%", "e"]
SPEC_BITS += ["%Y", "%B", "%d", "%c", "%%", "%Q", "{id}", "{", "}", "!", ":", "é", "\x00"]
TOKENS = ["{", "}", "{{", "}}", "[", "]", ".", "!r", ":", "%", " ", "environ", "IRODS_PASSWORD"]

placeholders = st.builds(
    lambda name, tail, conversion, spec: "{" + name + tail + conversion + spec + "}",
    st.sampled_from(NAMES),
    st.sampled_from(TAILS),
    st.sampled_from(["", "", "", "", "", "", "", "!r", "!s", "!a", "!", "!x"]),
    st.one_of(
        st.just(""),
        st.lists(st.sampled_from(SPEC_BITS), max_size=6).map(lambda bits: ":" + "".join(bits)),
    ),
)
hostile_text = st.lists(
    st.one_of(placeholders, placeholders, st.sampled_from(TOKENS), st.text(max_size=3)),
    max_size=8,
).map("".join)
# Strings that often parse, so that filling is fuzzed too: known names, plausible specs.
GOOD_SPECS = ["", ":,", ":>10", ":%B %Y", ":%Y-%m-%d %H:%M", ":.3", ":^20", ":_x", ":+08,d"]
GOOD_SPECS += [":%A %%", ":>200", ":.200", ":*<50", ":=+12", ":.2f", ":s", ":#o", ":.1%"]
TITLE_NAMES = ["id", "date", "collection", "properties[sensor]", "properties[nested]"]
TITLE_NAMES += ["properties[count]", "properties[missing]", "properties[none]"]
DESCRIPTION_NAMES = ["items", "start", "end", "id", "title"]


def _plausible(names: list[str]) -> st.SearchStrategy[str]:
    spec = st.one_of(st.sampled_from(GOOD_SPECS), st.sampled_from(SPEC_BITS).map(":".__add__))
    placeholder = st.builds(lambda name, s: "{" + name + s + "}", st.sampled_from(names), spec)
    literal = st.one_of(
        st.sampled_from(["{{", "}}", " ", "–", "%s", "\n"]),
        st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=4),
    )
    return st.lists(st.one_of(placeholder, placeholder, literal), max_size=6).map("".join)


fuzz_text = st.one_of(hostile_text, _plausible(TITLE_NAMES), _plausible(DESCRIPTION_NAMES))


def _fuzz_one(text: str, fields: Fields, values: dict[str, Any]) -> None:
    try:
        template = Template.parse(text, fields)
    except ValueError:
        return
    filled = template.fill(values)
    assert isinstance(filled, str) and len(filled) <= fields.limit
    assert SECRET not in filled


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=fuzz_text)
def test_fuzzed_templates_are_refused_or_fill_safely(text: str) -> None:
    os.environ["STACSYNC_TEMPLATE_CANARY"] = SECRET  # a hypothesis test cannot take monkeypatch
    try:
        _fuzz_one(text, ITEM_TITLE, _title_values())
        _fuzz_one(text, ITEM_TITLE, _title_values(properties={"sensor": "x" * 5000}))
        _fuzz_one(text, DESCRIPTION, _description_values())
        _fuzz_one(text, DESCRIPTION, _description_values(start=None, items=0, title="{" * 20_000))
    finally:
        del os.environ["STACSYNC_TEMPLATE_CANARY"]
