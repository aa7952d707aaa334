"""Walk the registry over a parsed TOML document: check every key, convert every value.

Nothing is built here: the checked values (nested as the sections are) go to
`stacsync.config.load`, and every mistake goes to the ReadContext, named by its key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stacsync.config.keys import Key, Section
from stacsync.config.kinds import ReadContext, convert, type_name
from stacsync.config.registry import ROOT, child_sections
from stacsync.core.s3url import parse_s3_url

_SECRET = re.compile(
    r"pass(word|wd|phrase)?$|^pw$|^pwd$|password|passwd|token|secret|api[-_]?key|credential"
    r"|private[-_]?key|irods[-_]?auth|access[-_]?key",
    re.IGNORECASE,
)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
SECRET_HELP = (
    "credentials do not belong in the config file; use environment variables or the "
    "client's own files (iRODS: ~/.irods/irods_environment.json via iinit; S3: "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or AWS_PROFILE)"
)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def find_secrets(value: Any, where: str) -> Iterator[str]:
    """Every key anywhere in the document that looks like it holds a credential."""
    if isinstance(value, dict):
        for name, child in value.items():
            path = _join(where, name)
            if _SECRET.search(name) and not _names_a_variable(name, child):
                yield path
            else:
                yield from find_secrets(child, path)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from find_secrets(child, f"{where}[{index}]")


def _names_a_variable(name: str, value: Any) -> bool:
    """`token_env = "STACSYNC_TOKEN"`: the name of an environment variable, not a secret."""
    return name.endswith("_env") and isinstance(value, str) and bool(_ENV_NAME.match(value))


def _unknown(name: str, candidates: list[str]) -> str:
    import difflib  # only for a mistake: start-up does not pay for it

    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}"


def _read_table(raw: Any, section: Section, where: str, ctx: ReadContext) -> dict[str, Any]:
    """Check one TOML table against its section; return converted values (children nested)."""
    if not isinstance(raw, dict):
        shape = f"[[{section.name}]]" if section.array else f"[{section.name}]"
        ctx.error(where, f"must be a table ({shape}), got {type_name(raw)}")
        return _empty_values(section)
    keys = {k.name: k for k in section.keys}
    children = {c.short: c for c in child_sections(section)}
    for name in raw:
        if name not in keys and name not in children and not _SECRET.search(name):
            ctx.error(_join(where, name), _unknown(name, [*keys, *children]))
    values = {k.name: _read_key(raw, k, where, ctx) for k in section.keys}
    if section.name == "source" and isinstance(values.get("path"), Path):
        ctx.source_dir = values["path"]  # table paths, read later, resolve against it
    elif section.name == "source" and isinstance(values.get("irods"), str):
        ctx.source_dir = Path(values["irods"])  # a table there is fetched (load._fetched_tables)
    elif section.name == "source" and isinstance(values.get("url"), str):
        # As load._one_of names it: a table in the bucket is fetched (load._fetched_tables).
        where = parse_s3_url(values["url"])
        ctx.source_dir = Path("/s3:") / where.bucket / where.prefix
    for short, child in children.items():
        values[short] = _read_child(raw.get(short), child, _join(where, short), ctx)
    return values


def _empty_values(section: Section) -> dict[str, Any]:
    """Values of a section that could not be read, so building can go on to report more."""
    values: dict[str, Any] = {k.name: None for k in section.keys}
    for child in child_sections(section):
        values[child.short] = [] if child.array else ({} if child.free_form else None)
    return values


def _read_key(raw: dict, key: Key, where: str, ctx: ReadContext) -> Any:
    if key.name not in raw:
        if key.required:
            ctx.error(_join(where, key.name), "required")
            return None
        raw_value = key.default
    else:
        raw_value = raw[key.name]
    if raw_value is None:
        return None
    try:
        return convert(key, raw_value, ctx)
    except ValueError as exc:
        ctx.error(_join(where, key.name), str(exc))
        return None


def _read_child(raw: Any, section: Section, where: str, ctx: ReadContext) -> Any:
    if section.free_form:
        return _read_map(raw, section, where, ctx)
    if section.array:
        return _read_array(raw, section, where, ctx)
    if raw is None:
        return None if section.optional else _read_table({}, section, where, ctx)
    return _read_table(raw, section, where, ctx)


def _read_array(raw: Any, section: Section, where: str, ctx: ReadContext) -> list[dict[str, Any]]:
    raw = [] if raw is None else raw
    if not isinstance(raw, list):
        ctx.error(where, f"must be an array of tables ([[{section.name}]]), got {type_name(raw)}")
        return []
    if len(raw) < section.min_items:
        ctx.error(where, f"at least {section.min_items} [[{section.name}]] block is required")
    return [_read_table(item, section, f"{where}[{i}]", ctx) for i, item in enumerate(raw)]


def _read_map(raw: Any, section: Section, where: str, ctx: ReadContext) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        ctx.error(where, f"must be a table ([{section.name}]), got {type_name(raw)}")
        return {}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if _SECRET.search(name):
            continue
        try:
            values[name] = convert(Key(name, section.free_form or "any", None, ""), value, ctx)
        except ValueError as exc:
            ctx.error(_join(where, name), str(exc))
    return values


def read_document(document: dict[str, Any], ctx: ReadContext) -> dict[str, Any]:
    """The checked values of a whole document; each mistake (and credential) goes to `ctx`."""
    for where in find_secrets(document, ""):
        ctx.error(where, SECRET_HELP)
    return _read_table(document, ROOT, "", ctx)
