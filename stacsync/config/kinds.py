"""Value kinds of the config registry: how each kind is checked and converted, and its docs.

A converter takes (value as parsed from TOML, its Key, the ReadContext) and returns the typed
value, or raises ValueError with a message that follows "<key>: ".
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from stacsync.config.keys import Key
from stacsync.config.patterns import PathPattern
from stacsync.core.ids import safe_id
from stacsync.core.s3url import parse_s3_url

MIN_INTERVAL = 0.1  # seconds: the shortest poll or reconcile period (kind `interval`)

# kind -> words used in the docs' "Type" column
KIND_DOCS: dict[str, str] = {
    "str": "string",
    "id": "id (letters, digits, `.`, `_`, `-`)",
    "path": "path (relative: to the config file's folder)",
    "source_path": "path (relative: to `source.path`; in `source.irods` or `source.url`: fetched)",
    "url": "http(s) URL",
    "href_target": "http(s) URL or absolute path",
    "abs_prefix": "absolute path or `s3://bucket/…`",
    "globs": "list of glob patterns",
    "strings": "list of strings",
    "seconds": "number ≥ 0 (seconds)",
    "interval": f"number ≥ {MIN_INTERVAL:g} (seconds)",
    "count": "integer ≥ 0",
    "choice": "string",
    "choices": "list of strings",
    "regex": "regular expression",
    "crs": "CRS (EPSG code, WKT, PROJ string)",
    "datetime": "ISO 8601 date or datetime",
    "column": "column name",
    "columns": "list of column names",
    "strftime": "strptime format",
    "bool": "true or false",
    "irods_path": "absolute iRODS path (`/zone/home/...`)",
    "s3_url": "S3 URL (`s3://bucket/prefix/`)",
}


@dataclass
class ReadContext:
    """Where relative paths resolve while one document is read, and every error found so far."""

    config_dir: Path
    source_dir: Path
    errors: list[str] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")


def convert(key: Key, value: Any, ctx: ReadContext) -> Any:
    """`value` checked and converted as `key`'s kind says; ValueError says what is wrong."""
    return KINDS[key.kind](value, key, ctx)


def typed_default(key: Key) -> Any:
    """A key's default as the loader would set it (a list becomes a tuple, 30 becomes 30.0).

    Only for kinds that need no file location: the typed settings' field defaults.
    """
    if key.default is None or key.required:
        return key.default
    return convert(key, key.default, ReadContext(Path(), Path()))


_TOML_TYPE = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "a list",
    dict: "a table",
    datetime: "a datetime",
    date: "a date",
}


def type_name(value: Any) -> str:
    return _TOML_TYPE.get(type(value), type(value).__name__)


def _expect(value: Any, types: tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and bool not in types:
        raise ValueError(f"must be {what}, got {type_name(value)}")
    if not isinstance(value, types):
        raise ValueError(f"must be {what}, got {type_name(value)}")


def _str(value: Any, key: Key, ctx: ReadContext) -> str:
    _expect(value, (str,), "a string")
    return value


def _nonempty(value: Any, key: Key, ctx: ReadContext) -> str:
    _expect(value, (str,), "a string")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _strings(value: Any, key: Key, ctx: ReadContext) -> tuple[str, ...]:
    _expect(value, (list,), "a list of strings")
    for item in value:
        _expect(item, (str,), "a list of strings")
    return tuple(value)


def _globs(value: Any, key: Key, ctx: ReadContext) -> tuple[str, ...]:
    patterns = _strings(value, key, ctx)
    if any(not p.strip() for p in patterns):
        raise ValueError("patterns must not be empty")
    # a pattern is anchored at the source root anyway; a leading "/" or "./" adds nothing
    return tuple(p.lstrip("/") if "/" in p else p for p in (p.removeprefix("./") for p in patterns))


def _path(value: Any, key: Key, ctx: ReadContext) -> Path:
    return _resolve(Path(os.path.expanduser(_nonempty(value, key, ctx))), ctx.config_dir)


def _source_path(value: Any, key: Key, ctx: ReadContext) -> Path:
    return _resolve(Path(os.path.expanduser(_nonempty(value, key, ctx))), ctx.source_dir)


def _bool(value: Any, key: Key, ctx: ReadContext) -> bool:
    _expect(value, (bool,), "true or false")
    return value


def _irods_path(value: Any, key: Key, ctx: ReadContext) -> str:
    text = _nonempty(value, key, ctx)
    parts = PurePosixPath(text).parts
    if not text.startswith("/") or len(parts) < 3:
        raise ValueError("must be an absolute iRODS path like /zone/home/user/folder")
    if ".." in parts:
        raise ValueError("must not contain '..'")
    return str(PurePosixPath(text))


def _resolve(path: Path, base: Path) -> Path:
    return Path(os.path.normpath(path if path.is_absolute() else base / path))


def check_url(value: str) -> str:
    """Return an http(s) URL without its trailing `/`; ValueError when it is not one."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must start with http:// or https://")
    if parts.username or parts.password:
        raise ValueError(
            "must not contain a user name or password (credentials stay out of configs)"
        )
    return value.rstrip("/")


def _url(value: Any, key: Key, ctx: ReadContext) -> str:
    return check_url(_nonempty(value, key, ctx))


def _href_target(value: Any, key: Key, ctx: ReadContext) -> str:
    text = _nonempty(value, key, ctx)
    if text.startswith("/"):
        return text.rstrip("/") or "/"
    try:
        return check_url(text)
    except ValueError:
        raise ValueError("must be an http(s) URL or an absolute path") from None


def _abs_prefix(value: Any, key: Key, ctx: ReadContext) -> str:
    text = _nonempty(value, key, ctx)
    if text.startswith("s3://"):  # objects of an S3 source are addressed s3://bucket/key
        location = parse_s3_url(text)
        return location.url().rstrip("/")
    if not text.startswith("/"):
        raise ValueError(f"must be an absolute path (start with /) or s3://bucket/, got {text!r}")
    return text.rstrip("/") or "/"


def _s3_url(value: Any, key: Key, ctx: ReadContext) -> str:
    """`s3://bucket/prefix/`, normalised: the prefix ends in `/` (or is empty)."""
    return parse_s3_url(_nonempty(value, key, ctx)).url()


def _seconds(value: Any, key: Key, ctx: ReadContext) -> float:
    _expect(value, (int, float), "a number")
    if value < 0:
        raise ValueError(f"must be a number ≥ 0, got {value}")
    return float(value)


def _interval(value: Any, key: Key, ctx: ReadContext) -> float:
    # A period the daemon sleeps: 0 would spin.
    _expect(value, (int, float), "a number")
    if value < MIN_INTERVAL:
        raise ValueError(f"must be a number ≥ {MIN_INTERVAL:g}, got {value}")
    return float(value)


def _count(value: Any, key: Key, ctx: ReadContext) -> int:
    _expect(value, (int,), "an integer")
    if value < 0:
        raise ValueError(f"must be ≥ 0, got {value}")
    return value


def _choice(value: Any, key: Key, ctx: ReadContext) -> str:
    _expect(value, (str,), "a string")
    if value not in key.choices:
        raise ValueError(f"must be one of {', '.join(key.choices)}, got {value!r}")
    return value


def _choices(value: Any, key: Key, ctx: ReadContext) -> tuple[str, ...]:
    values = _strings(value, key, ctx)
    for item in values:
        if item not in key.choices:
            raise ValueError(f"must be among {', '.join(key.choices)}, got {item!r}")
    return values


def _id(value: Any, key: Key, ctx: ReadContext) -> str:
    text = _nonempty(value, key, ctx)
    if safe_id(text) != text:
        hint = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
        hint = hint if hint and safe_id(hint) == hint else safe_id(text)
        raise ValueError(
            f"{text!r} is not a safe id (letters, digits, '.', '_', '-'); try {hint!r}"
        )
    return text


def _regex(value: Any, key: Key, ctx: ReadContext) -> PathPattern:
    return PathPattern(_nonempty(value, key, ctx))  # ValueError names what RE2 refuses


def _crs(value: Any, key: Key, ctx: ReadContext) -> str:
    text = _nonempty(value, key, ctx)
    import pyproj  # only configs that name a CRS pay for the import

    try:
        pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as exc:
        raise ValueError(f"not a CRS pyproj understands: {exc}") from None
    return text


def _datetime(value: Any, key: Key, ctx: ReadContext) -> str:
    _expect(value, (str, datetime, date), "an ISO 8601 date or datetime")
    return to_utc_iso(value)


def _strftime(value: Any, key: Key, ctx: ReadContext) -> str:
    text = _nonempty(value, key, ctx)
    if "%" not in text:
        raise ValueError(f"{text!r} has no % directive; see Python's strptime formats")
    return text


def _any(value: Any, key: Key, ctx: ReadContext) -> Any:
    return _jsonable(value)


KINDS: dict[str, Callable[[Any, Key, ReadContext], Any]] = {
    "str": _str,
    "id": _id,
    "path": _path,
    "source_path": _source_path,
    "url": _url,
    "href_target": _href_target,
    "abs_prefix": _abs_prefix,
    "globs": _globs,
    "strings": _strings,
    "seconds": _seconds,
    "interval": _interval,
    "count": _count,
    "choice": _choice,
    "s3_url": _s3_url,
    "choices": _choices,
    "regex": _regex,
    "crs": _crs,
    "datetime": _datetime,
    "column": _nonempty,
    "columns": _strings,
    "strftime": _strftime,
    "any": _any,
    "bool": _bool,
    "irods_path": _irods_path,
}


def _jsonable(value: Any) -> Any:
    """TOML values as JSON values: datetimes become ISO strings."""
    if isinstance(value, datetime | date):
        return to_utc_iso(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# unambiguous non-ISO forms only; anything day/month-ambiguous needs table.datetime_format
_EXTRA_FORMATS = ("%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y:%m:%d %H:%M:%S", "%Y%m%d")


def to_utc_iso(value: Any, fmt: str | None = None) -> str:
    """An ISO 8601 UTC string (`...Z`) from a date, datetime or string; ValueError otherwise.

    A date becomes midnight UTC, a naive datetime is taken as UTC, an aware one is converted.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        moment = _parse_datetime_text(value.strip(), fmt)
    else:
        raise ValueError(f"not a date or datetime: {value!r}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat() + "Z"


def _parse_datetime_text(text: str, fmt: str | None) -> datetime:
    formats = (fmt,) if fmt else _EXTRA_FORMATS
    if not fmt:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    for candidate in formats:
        try:
            return datetime.strptime(text, candidate)
        except ValueError:
            continue
    hint = f" with format {fmt!r}" if fmt else " (expected ISO 8601, e.g. 2019-05-19)"
    raise ValueError(f"cannot read {text!r} as a date{hint}")
