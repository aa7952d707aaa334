"""Tests for stacsync.config: TOML → Settings, every mistake named by its key."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest

from stacsync.catalog.hrefs import rewrite_href
from stacsync.catalog.layout import Layout
from stacsync.config.collection_keys import DEFAULT_ASSET_TITLES
from stacsync.config.kinds import KIND_DOCS, KINDS, to_utc_iso, typed_default
from stacsync.config.load import load_settings, quick_settings
from stacsync.config.registry import SECTIONS, key_of, registry_keys, section_of
from stacsync.config.settings import (
    CollectionConfig,
    DaemonOptions,
    IrodsSettings,
    MailSettings,
    Settings,
    StacApiSettings,
    TableConfig,
)
from stacsync.config.text import LAYOUTS, example_config, reference_markdown
from stacsync.core.errors import ConfigError
from stacsync.sources.include import is_included

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

BASE = """
[source]
path = "data"
[output]
path = "out"
[[collection]]
id = "c"
match = '^(?P<item>.+)$'
"""


def write(tmp_path: Path, text: str, name: str = "stacsync.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str):
    return load_settings(write(tmp_path, text))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return str(info.value)


# ---------------------------------------------------------------- loading and defaults


def test_minimal_config_fills_defaults_and_resolves_paths(tmp_path: Path) -> None:
    settings = load(tmp_path, BASE)
    assert settings.source_path == tmp_path / "data"
    assert settings.output_path == tmp_path / "out"
    assert settings.manifest_path == tmp_path / "stacsync.db"
    assert settings.config_path == tmp_path / "stacsync.toml"
    assert settings.include == ("*.tif", "*.tiff", "*.las", "*.laz")
    assert settings.exclude == ()
    assert settings.settle_seconds == 0.0
    assert settings.checksum == "sha2-256"
    assert settings.workers >= 1  # 0 means "number of CPUs"
    assert settings.public_url is None
    assert settings.href_rewrites == ()
    assert settings.catalog_id == "stacsync"
    (collection,) = settings.collections
    assert collection.license == "other"
    assert collection.description == "c"  # no title either: falls back to the id
    assert collection.pc_type == "lidar"
    assert collection.table is None
    assert collection.asset_titles == DEFAULT_ASSET_TITLES


def test_full_config_values(tmp_path: Path) -> None:
    text = """
[source]
path = "/srv/data/"
include = ["*.TIF"]
exclude = ["./tmp/*"]
settle_seconds = 2.5
[output]
path = "/srv/data/stac"
public_url = "https://example.org/stac/"
[manifest]
path = "state/m.db"
[catalog]
id = "cat"
title = "Cat"
[checksum]
algorithm = "none"
[extract]
workers = 3
[[href_rewrite]]
prefix = "/srv/data/"
to = "https://example.org/data/"
[[collection]]
id = "ofo"
title = "OFO"
keywords = ["a", "b"]
match = 'missions/(?P<item>\\d{6})/(?P<asset>[^/]+)\\.tif$'
crs = "EPSG:32610"
default_datetime = 2023-05-25T12:00:00-07:00
[[collection.providers]]
name = "OFO"
roles = ["producer", "host"]
[collection.asset_titles]
extra = "Extra layer"
orthomosaic = "Ortho"
[collection.table]
path = "metadata/m.gpkg"
layer = "missions"
key = "dataset_id"
datetime = "when"
properties = ["sensor_name"]
[collection.properties]
platform = "DJI Phantom 4 RTK"
"sci:doi" = "10.1002/ecs2.3649"
flown = 2019-05-19
"""
    settings = load(tmp_path, text)
    assert settings.source_path == Path("/srv/data")
    assert settings.include == ("*.TIF",)
    assert settings.exclude == ("tmp/*", "stac/*")  # output inside source: excluded
    assert settings.settle_seconds == 2.5
    assert settings.public_url == "https://example.org/stac"
    assert settings.manifest_path == tmp_path / "state" / "m.db"
    assert settings.checksum == "none"
    assert settings.workers == 3
    assert settings.href_rewrites == (("/srv/data", "https://example.org/data"),)
    (c,) = settings.collections
    assert c.title == "OFO" and c.description == "OFO"
    assert c.keywords == ("a", "b")
    assert c.crs == "EPSG:32610"
    assert c.default_datetime == "2023-05-25T19:00:00Z"
    assert c.providers == ({"name": "OFO", "roles": ["producer", "host"]},)
    assert c.asset_titles["extra"] == "Extra layer"
    assert c.asset_titles["orthomosaic"] == "Ortho"
    assert c.asset_titles["points"] == "Point cloud"
    assert c.table is not None
    assert c.table.path == Path("/srv/data/metadata/m.gpkg")  # relative to the source
    assert c.table.layer == "missions"
    assert c.table.properties == ("sensor_name",)
    assert c.properties == {
        "platform": "DJI Phantom 4 RTK",
        "sci:doi": "10.1002/ecs2.3649",
        "flown": "2019-05-19T00:00:00Z",
    }


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_example_config_loads(tmp_path: Path, layout: str) -> None:
    text = example_config(layout)
    assert text.startswith("# stacsync configuration")
    settings = load(tmp_path, text)
    assert len(settings.collections) == 1
    assert settings.href_rewrites  # every layout shows the CyVerse public mapping


def test_ofo_example_places_an_ofo_path(tmp_path: Path) -> None:
    settings = load(tmp_path, example_config("ofo"))
    (c,) = settings.collections
    assert c.table is not None and c.table.key == "dataset_id"
    found = c.match.search("missions/000421/processed_02/full/dsm-mesh.tif")
    assert found and found["item"] == "000421" and found["asset"] == "dsm-mesh"
    assert settings.public_url and settings.public_url.startswith("https://data.cyverse.org/")


def test_csv_example_groups_by_plot(tmp_path: Path) -> None:
    settings = load(tmp_path, example_config("csv"))
    (c,) = settings.collections
    assert c.table is not None and c.table.item_column == "plot"
    assert c.properties["sci:doi"] == "10.1002/ecs2.3649"
    assert c.match.search("15_g2.tif")["asset"] == "15_g2"


def test_unknown_layout() -> None:
    with pytest.raises(ConfigError, match="layout: must be one of"):
        example_config("nope")


# ---------------------------------------------------------------- mistakes, each named


MISTAKES = [
    # (what to change in BASE, expected message start)
    (BASE.replace('path = "data"\n', ""), "source.path: required"),
    (BASE.replace("'^(?P<item>.+)$'", "'^(?P<item>.+$'"), "collection[0].match: invalid regex:"),
    (
        BASE + '[checksum]\nalgorithm = "md5"\n',
        "checksum.algorithm: must be one of sha2-256, none, got 'md5'",
    ),
    (
        BASE.replace('path = "out"', 'path = "out"\npublic_url = "ftp://x/stac"'),
        "output.public_url: must start with http:// or https://",
    ),
    (
        BASE + '[[collection]]\nid = "d"\nmatch = "x"\ntitel = "D"\n',
        "collection[1].titel: unknown key (did you mean 'title'?)",
    ),
    (BASE + "[sorce]\n", "sorce: unknown key (did you mean 'source'?)"),
    (
        BASE.replace('path = "data"', 'path = "data"\nsettle_seconds = "10"'),
        "source.settle_seconds: must be a number, got a string",
    ),
    (BASE + "[extract]\nworkers = true\n", "extract.workers: must be an integer, got true/false"),
    (BASE + "[extract]\nworkers = -1\n", "extract.workers: must be ≥ 0"),
    (
        BASE.replace('path = "data"', 'path = "data"\ninclude = "*.tif"'),
        "source.include: must be a list of strings, got a string",
    ),
    (BASE + '[[collection]]\nid = "c"\nmatch = "x"\n', "collection[1].id: duplicate collection id"),
    (BASE.replace('id = "c"', 'id = "my collection"'), "collection[0].id: 'my collection' is not"),
    (BASE + 'default_datetime = "last tuesday"\n', "collection[0].default_datetime: cannot read"),
    (BASE + 'crs = "EPSG:99999999"\n', "collection[0].crs: not a CRS pyproj understands"),
    (BASE + 'pc_type = "laser"\n', "collection[0].pc_type: must be one of lidar"),
    (
        BASE.replace("(?P<item>.+)", "(?P<itme>.+)"),
        "collection[0].match: unknown group 'itme'",
    ),
    (
        BASE.replace("(?P<item>.+)", "(?P<asset>.+)"),
        "collection[0].match: needs an (?P<item>...) group, or set table.item_column",
    ),
    (
        BASE.split("[[collection]]")[0],
        "collection: at least 1 [[collection]] block is required",
    ),
    (
        BASE.replace("[[collection]]", "[collection]"),
        "collection: must be an array of tables ([[collection]]), got a table",
    ),
    (
        BASE + '[[href_rewrite]]\nprefix = "data-store"\nto = "https://x.org"\n',
        "href_rewrite[0].prefix: must be an absolute path",
    ),
    (
        BASE + '[[href_rewrite]]\nprefix = "/data-store"\nto = "x.org"\n',
        "href_rewrite[0].to: must be an http(s) URL or an absolute path",
    ),
    (BASE + '[[href_rewrite]]\nprefix = "/d"\n', "href_rewrite[0].to: required"),
    (
        BASE + '[[collection.providers]]\nname = "X"\nroles = ["owner"]\n',
        "collection[0].providers[0].roles: must be among licensor",
    ),
    (
        BASE + '[[collection.providers]]\nurl = "https://x.org"\n',
        "collection[0].providers[0].name: required",
    ),
    (
        BASE + '[collection.asset_titles]\n"Ortho Mosaic" = "x"\n',
        "collection[0].asset_titles.Ortho Mosaic: not an asset key",
    ),
    (
        BASE + "[collection.asset_titles]\northomosaic = 3\n",
        "collection[0].asset_titles.orthomosaic: must be a string",
    ),
    (
        BASE + '[collection.properties]\ndatetime = "2020-01-01"\n',
        "collection[0].properties.datetime:",
    ),
    (BASE + '[collection.table]\npath = "t.csv"\n', "collection[0].table.key: required"),
    (
        BASE + '[collection.table]\npath = "t.csv"\nkey = "Id"\nkeyy = "x"\n',
        "collection[0].table.keyy: unknown key (did you mean 'key'?)",
    ),
    (
        BASE + '[collection.table]\npath = "t.csv"\nkey = "Id"\ndatetime_format = "Y-m-d"\n',
        "collection[0].table.datetime_format: 'Y-m-d' has no % directive",
    ),
    (BASE.replace('path = "out"', 'path = "data"'), "output.path: must not be the source folder"),
    (BASE + 'license = ""\nlicense = "x"\n', "TOML syntax error"),
]


@pytest.mark.parametrize(("text", "message"), MISTAKES, ids=[m for _, m in MISTAKES])
def test_each_mistake_names_its_key(tmp_path: Path, text: str, message: str) -> None:
    assert message in error_of(tmp_path, text)


def test_syntax_error_gives_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[source]\npath = "x"\npath = = 3\n')
    assert "TOML syntax error" in message and "line 3" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_all_mistakes_reported_at_once(tmp_path: Path) -> None:
    text = BASE.replace('path = "data"\n', "") + '[checksum]\nalgorithm = "md5"\n'
    lines = error_of(tmp_path, text).splitlines()
    assert (
        "source.path: required (or source.irods for an iRODS collection, source.url for S3)"
        in lines
    )
    assert any(line.startswith("checksum.algorithm:") for line in lines)


# ---------------------------------------------------------------- credentials


SECRETS = [
    (BASE.replace('path = "data"', 'path = "data"\npassword = "hunter2"'), "source.password"),
    (BASE + '[irods]\nhost = "data.cyverse.org"\nirods_password = "x"\n', "irods.irods_password"),
    (BASE + '[collection.properties]\napi_token = "x"\n', "collection[0].properties.api_token"),
    (
        BASE + '[[href_rewrite]]\nprefix = "/a"\nto = "https://x.org"\nsecret = "s"\n',
        "href_rewrite[0].secret",
    ),
]


@pytest.mark.parametrize(("text", "where"), SECRETS, ids=[w for _, w in SECRETS])
def test_credentials_refused(tmp_path: Path, text: str, where: str) -> None:
    message = error_of(tmp_path, text)
    assert f"{where}: credentials do not belong in the config file" in message
    assert "hunter2" not in message


def test_credentials_in_urls_refused(tmp_path: Path) -> None:
    text = BASE.replace('path = "out"', 'path = "out"\npublic_url = "https://me:pw@x.org/stac"')
    assert "output.public_url: must not contain a user name or password" in error_of(tmp_path, text)


# ---------------------------------------------------------------- quick_settings


def test_quick_settings(tmp_path: Path) -> None:
    source = tmp_path / "My Drone Data"
    settings = quick_settings(source, source / "stac", tmp_path / "m.db", "https://x.org/stac/")
    (c,) = settings.collections
    assert c.id == "My-Drone-Data" or c.id.startswith("My-Drone-Data-")
    assert c.match.search("a/b.tif")["item"] == "a/b.tif"
    assert settings.public_url == "https://x.org/stac"
    assert settings.config_path is None
    assert not is_included(settings, "stac/x.tif")  # output inside source is never listed
    placement = Layout(settings).place("a/b.tif")
    assert placement is not None
    assert (placement.item_id, placement.asset_key) == ("a__b-tif", "data")


def test_quick_settings_rejects_bad_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="public_url: must start with http"):
        quick_settings(tmp_path, tmp_path / "o", tmp_path / "m.db", "data.cyverse.org")


# ---------------------------------------------------------------- include / exclude


def included(tmp_path: Path, include: list[str] | None, exclude: list[str], relpath: str) -> bool:
    lines = ['[source]\npath = "data"']
    if include is not None:
        lines.append(f"include = {include!r}".replace("'", '"'))
    lines.append(f"exclude = {exclude!r}".replace("'", '"'))
    text = "\n".join(lines) + "\n" + BASE.split('[source]\npath = "data"\n')[1]
    return is_included(load(tmp_path, text), relpath)


@pytest.mark.parametrize(
    ("include", "exclude", "relpath", "expected"),
    [
        (None, [], "a/b/ortho.tif", True),
        (None, [], "a/b/ORTHO.TIF", True),  # case-insensitive
        (None, [], "points.LAZ", True),
        (None, [], "a/notes.txt", False),
        (None, [], "a/b.tif.aux.xml", False),
        (None, ["*.part"], "x.tif", True),
        (None, ["*.tif"], "x.tif", False),  # exclude wins over include
        (None, [".*"], ".hidden.tif", False),
        (None, [".*"], "a/.snapshot/x.tif", False),  # a folder name matches too
        (None, ["stac/*"], "stac/x.tif", False),
        (None, ["stac/*"], "other/stac/x.tif", True),  # with "/": anchored at the root
        (None, ["STAC/*"], "stac/a/x.tif", False),  # exclude is case-insensitive too
        (["missions/*/full/*.tif"], [], "missions/000421/full/a.tif", True),
        (["missions/*/full/*.tif"], [], "missions/000421/full/a.laz", False),
        (["missions/*/full/*.tif"], [], "x/missions/1/full/a.tif", False),
        (["/missions/*.tif"], [], "missions/a/b.tif", True),  # a leading "/" is dropped
    ],
)
def test_is_included(tmp_path, include, exclude, relpath, expected) -> None:
    assert included(tmp_path, include, exclude, relpath) is expected


def test_is_included_is_fast(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        BASE.replace('path = "data"', 'path = "data"\nexclude = ["stac/*", ".*", "*.part"]'),
    )
    paths = [f"missions/{i:06d}/processed/full/orthomosaic.tif" for i in range(10_000)]
    start = time.perf_counter()
    assert all(is_included(settings, p) for p in paths)
    assert time.perf_counter() - start < 0.5


# ---------------------------------------------------------------- hrefs


def rewriting(tmp_path: Path, rules: list[tuple[str, str]]):
    text = BASE + "".join(f'[[href_rewrite]]\nprefix = "{p}"\nto = "{t}"\n' for p, t in rules)
    return load(tmp_path, text)


def test_rewrite_href_component_boundary(tmp_path: Path) -> None:
    settings = rewriting(
        tmp_path, [("/data-store/iplant/home", "https://data.cyverse.org/dav-anon/iplant/home")]
    )
    url = rewrite_href(settings, "/data-store/iplant/home/shared/ofo/a b.tif")
    assert url == "https://data.cyverse.org/dav-anon/iplant/home/shared/ofo/a%20b.tif"
    assert rewrite_href(settings, "/data-store/iplant/homework/x.tif") == (
        "/data-store/iplant/homework/x.tif"
    )
    assert rewrite_href(settings, "/elsewhere/x.tif") == "/elsewhere/x.tif"


def test_rewrite_href_first_match_wins(tmp_path: Path) -> None:
    settings = rewriting(
        tmp_path, [("/a/b", "https://one.org"), ("/a", "https://two.org"), ("/c", "/mnt/c")]
    )
    assert rewrite_href(settings, "/a/b/x.tif") == "https://one.org/x.tif"
    assert rewrite_href(settings, "/a/bb/x.tif") == "https://two.org/bb/x.tif"
    assert rewrite_href(settings, "/c/ü.tif") == "/mnt/c/ü.tif"  # a path target is not quoted


# ---------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2019-05-19", "2019-05-19T00:00:00Z"),
        ("2019-06-04 11:59:40", "2019-06-04T11:59:40Z"),
        ("2019-06-04T11:59:40.000+00:00", "2019-06-04T11:59:40Z"),
        ("2019-06-04T04:59:40-07:00", "2019-06-04T11:59:40Z"),
        ("2019-06-04T11:59:40Z", "2019-06-04T11:59:40Z"),
        ("2019/05/19", "2019-05-19T00:00:00Z"),
    ],
)
def test_to_utc_iso(value: str, expected: str) -> None:
    assert to_utc_iso(value) == expected


def test_to_utc_iso_with_format() -> None:
    assert to_utc_iso("19/05/2019", "%d/%m/%Y") == "2019-05-19T00:00:00Z"
    with pytest.raises(ValueError, match="cannot read"):
        to_utc_iso("05/19/2019")  # ambiguous forms are never guessed


# ---------------------------------------------------------------- docs


def test_every_key_is_documented() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    missing = [name for name in registry_keys() if f"`{name}" not in docs]
    assert not missing, f"not in docs/configuration.md: {missing}"


def test_docs_reference_is_current() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    block = re.search(r"<!-- reference:start -->\n(.*)<!-- reference:end -->", docs, re.S)
    assert block, "docs/configuration.md lacks the reference markers"
    assert block.group(1).strip() == reference_markdown().strip(), (
        "paste the output of stacsync.config.text.reference_markdown() between the markers"
    )


def test_registry_is_consistent() -> None:
    names = [s.name for s in SECTIONS]
    assert len(names) == len(set(names))
    for section in SECTIONS:
        keys = [k.name for k in section.keys]
        assert len(keys) == len(set(keys)), section.name
        for key in section.keys:
            assert key.help.strip(), f"{section.name}.{key.name} has no help"


def test_docs_toml_examples_load(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 2
    for index, block in enumerate(blocks):
        load_settings(write(tmp_path, block, f"docs{index}.toml"))


# ---------------------------------------------------------------- iRODS source and output

IRODS = """
[source]
irods = "/iplant/home/shared/ofo/public"
[output]
irods = "/iplant/home/shared/ofo/public/stac"
[[collection]]
id = "c"
match = '^(?P<item>.+)$'
"""


def test_irods_source_and_output(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, IRODS))
    assert s.source_irods == "/iplant/home/shared/ofo/public"
    assert s.output_irods == "/iplant/home/shared/ofo/public/stac"
    # The output inside the source is never listed as data.
    assert not is_included(s, "stac/thumb.tif") and is_included(s, "m/ortho.tif")
    assert s.public_url == "https://data.cyverse.org/dav-anon/iplant/home/shared/ofo/public/stac"
    assert s.irods.public_zone == "iplant" and s.irods.public_user == "anonymous"
    assert s.irods.public_read and not s.irods.anonymous
    href = rewrite_href(s, "/iplant/home/shared/ofo/public/m 1/ortho.tif")
    assert href == "https://data.cyverse.org/dav-anon/iplant/home/shared/ofo/public/m%201/ortho.tif"


def test_irods_public_url_and_rewrites_win_over_the_default(tmp_path: Path) -> None:
    text = (
        IRODS.replace(
            'irods = "/iplant/home/shared/ofo/public/stac"',
            'irods = "/iplant/home/shared/ofo/public/stac"\npublic_url = "https://ofo.example/stac"',
        )
        + '[[href_rewrite]]\nprefix = "/iplant/home/shared/ofo"\nto = "https://ofo.example/data"\n'
    )
    s = load_settings(write(tmp_path, text))
    assert s.public_url == "https://ofo.example/stac"
    assert rewrite_href(s, "/iplant/home/shared/ofo/public/a.tif") == (
        "https://ofo.example/data/public/a.tif"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda t: t.replace("[source]\n", '[source]\npath = "data"\n'),
            "source.irods: give only one of source.path, source.irods and source.url "
            "(source.path and source.irods are set)",
        ),
        (
            lambda t: t.replace('"/iplant/home/shared/ofo/public"', '"shared/ofo"'),
            "source.irods: must be an absolute iRODS path like /zone/home/user/folder",
        ),
        (
            lambda t: t.replace("/public/stac", "/public/../stac"),
            "output.irods: must not contain '..'",
        ),
        (lambda t: t + '[irods]\nanonymous = "yes"\n', "irods.anonymous: must be true or false"),
        (
            lambda t: t.replace('irods = "/iplant/home/shared/ofo/public/stac"', ""),
            "output.path: required (or output.irods for an iRODS collection, output.url for S3)",
        ),
    ],
)
def test_irods_mistakes_are_named(tmp_path: Path, change, message: str) -> None:
    assert message in error_of(tmp_path, change(IRODS))


# ---------------------------------------------------------------- [notify]

NOTIFY = (
    BASE
    + """
[notify]
host = "localhost"
port = 2525
from = "stacsync@example.org"
to = ["keeper@example.org"]
"""
)


def test_notify_section(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, BASE)).notify is None
    mail = load_settings(write(tmp_path, NOTIFY)).notify
    assert mail is not None
    assert (mail.host, mail.port, mail.to_addrs) == ("localhost", 2525, ("keeper@example.org",))
    assert not mail.starttls and mail.username is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('to = ["keeper@example.org"]\n', ""), "notify.to: required"),
        (lambda t: t.replace('"keeper@example.org"', '"keeper"'), "notify.to: 'keeper' is not"),
        (
            lambda t: (
                t.replace('host = "localhost"', 'host = "smtp.example.org"')
                + 'username = "me"\nauth_env = "SMTP_PW"\n'
            ),
            "notify.starttls: must be true when logging in to a remote server",
        ),
        (lambda t: t + 'password = "x"\n', "notify.password"),
    ],
)
def test_notify_mistakes_are_named(tmp_path: Path, change, message: str) -> None:
    assert message in error_of(tmp_path, change(NOTIFY))


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("{name}", "collection[0].item_title: unknown placeholder {name} (known: {id}, {date}"),
        ("{date:%Y", "collection[0].item_title: unmatched '{' in format spec"),
        ("{id:d}", "collection[0].item_title: cannot be filled in"),
    ],
)
def test_item_title_mistakes_are_named(tmp_path: Path, title: str, message: str) -> None:
    text = BASE + f"item_title = '{title}'\n"
    assert message in error_of(tmp_path, text)


def test_item_title_default_and_custom(tmp_path: Path) -> None:
    default = load_settings(write(tmp_path, BASE)).collections[0].item_title
    assert default == "{id} ({date:%Y-%m-%d})"
    custom = BASE + "item_title = 'Plot {id} on {date:%d %B %Y}'\n"
    assert load_settings(write(tmp_path, custom)).collections[0].item_title.startswith("Plot {id}")


# ---------------------------------------------------------------- [daemon]


def test_daemon_table_is_read_into_settings(tmp_path: Path) -> None:
    assert load(tmp_path, BASE).daemon == DaemonOptions()
    text = BASE + "[daemon]\nwatch = 'poll'\nsettle_seconds = 5\nignore = ['*.x']\n"
    options = load(tmp_path, text).daemon
    assert options == DaemonOptions(watch="poll", settle_seconds=5.0, ignore=("*.x",))
    assert isinstance(options.settle_seconds, float)


def test_daemon_overrides_win_and_are_checked_as_the_file_is(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "[daemon]\npoll_seconds = 60\nwatch = 'events'\n")
    options = load_settings(path, {"poll_seconds": 7.5, "watch": None}).daemon
    assert (options.poll_seconds, options.watch) == (7.5, "events")  # None: not given
    for overrides, line, message in [
        (
            {"poll_seconds": 0},
            "poll_seconds = 0",
            "daemon.poll_seconds: must be a number ≥ 0.1, got 0",
        ),
        (
            {"settle_seconds": -1},
            "settle_seconds = -1",
            "daemon.settle_seconds: must be a number ≥ 0, got -1",
        ),
        (
            {"watch": "inotify"},
            "watch = 'inotify'",
            "daemon.watch: must be one of auto, events, poll, got 'inotify'",
        ),
        ({"ignore": ("",)}, "ignore = ['']", "daemon.ignore: patterns must not be empty"),
        (
            {"settle": 3},
            "settle = 3",
            "daemon.settle: unknown key (did you mean 'settle_seconds'?)",
        ),
    ]:
        with pytest.raises(ConfigError) as err:
            load_settings(path, overrides)  # as `stacsync run --poll-seconds 0` would give it
        assert message in str(err.value).splitlines()
        assert message in error_of(tmp_path, f"{BASE}[daemon]\n{line}\n").splitlines()


def test_stacsync_run_reads_daemon_through_the_same_loader(tmp_path: Path) -> None:
    from stacsync.daemon.loop import load_daemon_config

    path = write(tmp_path, BASE + "[daemon]\nreconcile_seconds = 90\n")
    settings, options = load_daemon_config(path, {"settle_seconds": 2})
    assert settings == load_settings(path, {"settle_seconds": 2})
    assert options is settings.daemon and options.reconcile_seconds == 90.0


# ---------------------------------------------------------------- each default written once

# Each typed class and the registry section its fields stand for (None: several sections).
TYPED = [
    (TableConfig, "collection.table"),
    (CollectionConfig, "collection"),
    (IrodsSettings, "irods"),
    (MailSettings, "notify"),
    (DaemonOptions, "daemon"),
    (StacApiSettings, "stac_api"),
    (Settings, None),
]
# Defaults of fields that stand for no registry key.
UNKEYED = {
    "TableConfig.source_relpath",
    "Settings.href_rewrites",
    "Settings.notify",
    "Settings.stac_api",  # built from [stac_api] when present
    "Settings.source_s3",  # built from [source] url, endpoint_url, region, anonymous
    "Settings.output_s3",  # built from [output] url, endpoint_url, region, public
}
# Fields the loader computes from their key (no default of their own).
BUILT = {"CollectionConfig.description"}


@pytest.mark.parametrize(("cls", "section"), TYPED, ids=lambda v: getattr(v, "__name__", v))
def test_every_field_default_is_the_registry_default(cls, section) -> None:
    """A field default is never written as a literal: it is read from the registry key."""
    keyed = 0
    for f in dataclasses.fields(cls):
        dotted = f.metadata.get("key")
        if dotted is None:
            assert f.default is dataclasses.MISSING or f"{cls.__name__}.{f.name}" in UNKEYED, (
                f"{cls.__name__}.{f.name} has a default of its own; take it from the registry"
            )
            continue
        keyed += 1
        where, _, name = dotted.rpartition(".")
        assert section in (None, where), f"{cls.__name__}.{f.name} stands for {dotted}"
        assert section is None or name == f.name
        assert f.default == typed_default(key_of(where, name))
    # The field of every optional key of the class's section is keyed.
    if section is not None:
        by_name = {f.name: f for f in dataclasses.fields(cls)}
        for key in section_of(section).keys:
            f = by_name.get(key.name)
            if f is None or key.required or f"{cls.__name__}.{f.name}" in BUILT:
                continue
            assert "key" in f.metadata, f"{cls.__name__}.{f.name}: default it from the registry"
    assert keyed


def test_a_minimal_config_loads_to_the_field_defaults(tmp_path: Path) -> None:
    """The loader (from the registry) and the dataclass defaults (from the registry) agree."""
    settings = load(tmp_path, NOTIFY)
    built = [
        (settings, Settings),
        (settings.collections[0], CollectionConfig),
        (settings.irods, IrodsSettings),
        (settings.notify, MailSettings),
        (settings.daemon, DaemonOptions),
    ]
    for value, cls in built:
        for f in dataclasses.fields(cls):
            if "key" in f.metadata and f.name not in ("port",):  # NOTIFY sets the port
                assert getattr(value, f.name) == f.default, f"{cls.__name__}.{f.name}"


def test_every_kind_converts_and_is_documented() -> None:
    for section in SECTIONS:
        for key in section.keys:
            assert key.kind in KINDS and key.kind in KIND_DOCS, f"{section.name}.{key.name}"
