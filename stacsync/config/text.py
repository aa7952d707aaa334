"""Text generated from the config registry: commented example configs and the docs' reference.

`stacsync init` prints `example_config`; docs/configuration.md embeds `reference_markdown`.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

from stacsync.config.keys import REQUIRED, Key, Section
from stacsync.config.kinds import KIND_DOCS
from stacsync.config.registry import ROOT, SECTIONS, child_sections
from stacsync.core.errors import ConfigError

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """A TOML literal for a str, number, bool, list or dict."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if "\\" in value and "'" not in value and "\n" not in value:
            return f"'{value}'"  # literal string: regexes stay readable
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"no TOML form for {value!r}")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _comment(text: str) -> list[str]:
    return textwrap.wrap(
        text, width=92, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False
    )


def _render_key(key: Key, values: dict[str, Any]) -> list[str]:
    lines = _comment(key.help + (" (required)" if key.required else ""))
    if key.name in values:
        return [*lines, f"{key.name} = {toml_value(values[key.name])}"]
    shown = key.example if key.default in (None, REQUIRED) else key.default
    if shown is None:
        return [*lines, f"# {key.name} ="]
    return [*lines, f"# {key.name} = {toml_value(shown)}"]


def _render_section(section: Section, values: dict[str, Any] | None) -> list[str]:
    header = f"[[{section.name}]]" if section.array else f"[{section.name}]"
    if values is None:
        if section.free_form or child_sections(section):
            return ["", *_comment(section.help), f"# {header}"]
        # An optional table: shown whole but commented out, ready to switch on.
        lines = ["", *_comment(section.help), f"# {header}"]
        for key in section.keys:
            lines += [f"# {line}" if line[:1] != "#" else line for line in _render_key(key, {})]
        return lines
    lines = ["", *_comment(section.help), header]
    if section.free_form:
        return lines + [f"{_toml_key(k)} = {toml_value(v)}" for k, v in values.items()]
    for key in section.keys:
        lines += _render_key(key, values)
    for child in child_sections(section):
        lines += _render_child(child, values.get(child.short))
    return lines


def _render_child(section: Section, values: Any) -> list[str]:
    if section.array:
        items = values or []
        if not items:
            return ["", *_comment(section.help), f"# [[{section.name}]]  (none)"]
        return [line for item in items for line in _render_section(section, item)]
    return _render_section(section, values)


_PLACEHOLDER_SOURCE = "/data-store/iplant/home/USER/drone"
_OFO_ROOT = "/data-store/iplant/home/shared/ofo/public"
_CYVERSE_REWRITE = {
    "prefix": "/data-store/iplant/home",
    "to": "https://data.cyverse.org/dav-anon/iplant/home",
}

# The Open Forest Observatory's public bucket on Jetstream2 (S3 API and Swift's web address).
_OFO_S3_ENDPOINT = "https://js2.jetstream-cloud.org:8001"
_OFO_S3_PUBLIC = _OFO_S3_ENDPOINT + "/swift/v1/ofo-public"
# <id>/photogrammetry_<NN>/full/<id>_<product>.tif (or _points.copc.laz), and the ortho's
# PNG in .../thumbnails/: `asset` takes the product, with ".png" for the thumbnail, so that
# asset_keys can tell the two apart (RE2 has no duplicate group names).
_OFO_S3_PRODUCTS = (
    r"ortho-dsm-(?:ptcloud|mesh)|dsm-(?:mesh|ptcloud)|dtm-ptcloud|chm-(?:mesh|ptcloud)"
)
_OFO_S3_MATCH = (
    r"^(?P<item>\d{6})/photogrammetry_\d+/(?:full|thumbnails)/\d{6}_"
    rf"(?P<asset>(?:{_OFO_S3_PRODUCTS})(?:\.png)?|points)(?:\.tif|\.copc\.laz)?$"
)

LAYOUTS: dict[str, dict[str, Any]] = {
    "files": {
        "about": "one item per file, asset key `data`",
        "source": {"path": _PLACEHOLDER_SOURCE},
        "output": {"path": _PLACEHOLDER_SOURCE + "/stac"},
        "href_rewrite": [_CYVERSE_REWRITE],
        "collection": [
            {
                "id": "drone-files",
                "title": "Drone products",
                "match": r"^(?P<item>.+)$",
            }
        ],
    },
    "ofo": {
        "about": "Open Forest Observatory missions, metadata from a GeoPackage keyed by dataset_id",
        "source": {"path": _OFO_ROOT, "exclude": ["stac/*", "*.part", ".*"], "settle_seconds": 60},
        "output": {
            "path": _OFO_ROOT + "/stac",
            "public_url": "https://data.cyverse.org/dav-anon/iplant/home/shared/ofo/public/stac",
        },
        "catalog": {"id": "ofo", "title": "Open Forest Observatory"},
        "href_rewrite": [_CYVERSE_REWRITE],
        "collection": [
            {
                "id": "ofo-missions",
                "title": "Open Forest Observatory drone missions",
                "license": "CC-BY-4.0",
                "keywords": ["drone", "forest", "photogrammetry"],
                "match": r"missions/(?P<item>\d{6})/processed[^/]*/full/(?P<asset>[^/]+)"
                r"\.(tif|tiff|laz|las)$",
                "providers": [
                    {
                        "name": "Open Forest Observatory",
                        "roles": ["producer", "processor"],
                        "url": "https://openforestobservatory.org",
                    },
                    {"name": "CyVerse", "roles": ["host"], "url": "https://cyverse.org"},
                ],
                "table": {
                    "path": "metadata/all-mission-polygons-w-metadata.gpkg",
                    "key": "dataset_id",
                    "datetime": "earliest_datetime_local_derived",
                    "properties": ["sensor_name", "flight_planner_name"],
                },
                "properties": {"license": "CC-BY-4.0"},
            }
        ],
    },
    "ofo-s3": {
        "about": "the Open Forest Observatory missions as they are in the public bucket "
        "s3://ofo-public/drone/missions_03/ (one item per mission, its metadata from the "
        "mission's own GeoPackage, its thumbnail the PNG already made)",
        "source": {
            "url": "s3://ofo-public/drone/missions_03/",
            "endpoint_url": _OFO_S3_ENDPOINT,
            "anonymous": True,
            # The products, the ortho's thumbnail and each mission's metadata file; not the
            # image zips or the other products' thumbnails.
            "include": [
                "*/full/*.tif",
                "*/full/*.copc.laz",
                "*/thumbnails/*_ortho-dsm-*.png",
                "*/metadata-mission/*_mission-metadata.gpkg",
            ],
        },
        "output": {"path": "ofo-stac"},
        "catalog": {"id": "ofo", "title": "Open Forest Observatory"},
        "href_rewrite": [{"prefix": "s3://ofo-public", "to": _OFO_S3_PUBLIC}],
        "collection": [
            {
                "id": "ofo-missions",
                "title": "Open Forest Observatory drone missions",
                "license": "CC-BY-4.0",
                "keywords": ["drone", "forest", "photogrammetry"],
                "match": _OFO_S3_MATCH,
                "providers": [
                    {
                        "name": "Open Forest Observatory",
                        "roles": ["producer", "processor", "host"],
                        "url": "https://openforestobservatory.org",
                    }
                ],
                # Either ortho is the orthomosaic (a mission with both reports the second);
                # the ortho's PNG is the item's thumbnail, published as it is.
                "asset_keys": {
                    "ortho-dsm-ptcloud": "orthomosaic",
                    "ortho-dsm-mesh": "orthomosaic",
                    "ortho-dsm-ptcloud.png": "thumbnail",
                    "ortho-dsm-mesh.png": "thumbnail",
                },
                "table": {
                    "path": "{item}/metadata-mission/{item}_mission-metadata.gpkg",
                    "per_item": True,
                    "datetime": "earliest_datetime_local_derived",
                    "properties": ["sensor_name", "flight_planner_name"],
                },
                "properties": {"license": "CC-BY-4.0"},
            }
        ],
    },
    "csv": {
        "about": "files grouped into one item per plot by a CSV with Id, plot, collection_date",
        "source": {"path": "/data-store/iplant/home/USER/srer_may2019"},
        "output": {"path": "/data-store/iplant/home/USER/srer_may2019/stac"},
        "href_rewrite": [_CYVERSE_REWRITE],
        "collection": [
            {
                "id": "srer-may2019",
                "title": "Santa Rita Experimental Range, May 2019",
                "description": "Imagery of the 2019 Ecostate Mapping project at Santa Rita "
                "Experimental Range.",
                "license": "CC-BY-SA-4.0",
                "match": r"^(?P<asset>[^/]+)\.(tif|tiff|laz|las)$",
                "default_datetime": "2023-05-25T12:00:00Z",
                "providers": [
                    {
                        "name": "Derek Young",
                        "roles": ["producer", "processor"],
                        "url": "https://openforestobservatory.org/",
                    }
                ],
                "table": {
                    "path": "collection_date.csv",
                    "key": "Id",
                    "item_column": "plot",
                    "datetime": "collection_date",
                    "datetime_format": "%Y-%m-%d",
                },
                "properties": {
                    "platform": "DJI Phantom 4 RTK",
                    "license": "CC-BY-SA-4.0",
                    "mission": "Open Forest Observatory Test Data",
                    "sci:doi": "10.1002/ecs2.3649",
                    "sci:citation": "Gillan, JK., GE Ponce-Campos, TL Swetnam, A Gorlier, "
                    "P Heilman, MP McClaran. 2021. Innovations to expand drone data collection "
                    "and analysis for rangeland monitoring. Ecosphere, 12(7)",
                },
            }
        ],
    },
}


def example_config(layout: str) -> str:
    """A commented TOML config for a layout (a name in LAYOUTS) that `load_settings` accepts."""
    if layout not in LAYOUTS:
        raise ConfigError(f"layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    values = LAYOUTS[layout]
    lines = _comment(
        f"stacsync configuration — layout {layout!r}: {values['about']}. Keys shown commented "
        "out take their default; reference: docs/configuration.md. Never put passwords or "
        "tokens here: iRODS credentials come from ~/.irods or the environment, S3 ones from "
        "the AWS environment variables or ~/.aws, database passwords from PGPASSWORD or "
        ".pgpass."
    )
    for section in child_sections(ROOT):
        absent = [] if section.array else (None if section.optional else {})
        section_values = values.get(section.short, absent)
        lines += _render_child(section, section_values)
    return "\n".join(lines) + "\n"


def _doc_default(key: Key) -> str:
    if key.required:
        return "**required**"
    if key.default is None:
        return "—"
    return f"`{toml_value(key.default)}`"


def _doc_type(key: Key) -> str:
    kind = KIND_DOCS[key.kind]
    if key.choices:
        kind += ": " + ", ".join(f"`{c}`" for c in key.choices)
    return kind


def reference_markdown() -> str:
    """The key reference of docs/configuration.md, generated from the registry."""
    lines: list[str] = []
    for section in SECTIONS:
        header = f"[[{section.name}]]" if section.array else f"[{section.name}]"
        lines += ["", f"### `{header}`", "", section.help, ""]
        if section.free_form:
            lines.append(f"Keys are free-form: `{section.name}.<name>`.")
            continue
        lines += ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
        for key in section.keys:
            help_text = key.help.replace("|", "\\|")
            row = f"| `{section.name}.{key.name}` | {_doc_type(key)} | {_doc_default(key)} "
            lines.append(row + f"| {help_text} |")
    return "\n".join(lines).strip() + "\n"
