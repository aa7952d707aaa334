"""What `stacsync validate` reports: problems by kind, hrefs left unchecked, and counts.

Also `UrlMap`, an absolute URL prefix whose files are in a local folder (`--source-url`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from stacsync.config.kinds import check_url

COUNTED = ("catalogs", "collections", "items", "links", "assets", "index features")


class Kind(StrEnum):
    """What sort of problem a line reports."""

    JSON = "json"  # missing, unreadable, not JSON or not a STAC object
    SCHEMA = "schema"
    LINK = "link"
    ASSET = "asset"
    ORPHAN = "orphan"
    INDEX = "index"


@dataclass(frozen=True)
class Problem:
    """One broken thing: the file (relative to the output), the field's JSON path, what."""

    file: str
    where: str
    message: str
    kind: Kind

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {
            "file": self.file,
            "where": self.where,
            "kind": self.kind.value,
            "message": self.message,
        }


@dataclass(frozen=True)
class Unchecked:
    """An absolute href that could only be checked over the network, so was not."""

    file: str
    where: str
    href: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "where": self.where, "href": self.href}


@dataclass(frozen=True)
class UrlMap:
    """An absolute URL prefix whose files are also in a local folder."""

    url: str
    folder: Path

    @classmethod
    def parse(cls, text: str) -> UrlMap:
        """`URL=PATH`, as given to `--source-url`."""
        url, sep, folder = text.partition("=")
        if not sep or not url or not folder:
            raise ValueError(f"{text!r}: expected URL=PATH")
        return cls(check_url(url), Path(folder))

    def local(self, href: str) -> Path | None:
        """The local file `href` names, or None when it is not under this URL."""
        prefix = self.url.rstrip("/")
        if href != prefix and not href.startswith(prefix + "/"):
            return None
        rest = urlsplit(href[len(prefix) :]).path
        return self.folder / os.fsdecode(unquote_to_bytes(rest)).lstrip("/")


@dataclass
class CheckReport:
    """Everything `check_catalog` found; `ok` when there is no problem."""

    output: Path
    public_urls: tuple[str, ...] = ()
    problems: list[Problem] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "output": str(self.output),
            "public_urls": list(self.public_urls),
            "counts": {key: self.counts[key] for key in sorted(self.counts)},
            "problems": [p.to_dict() for p in self.problems],
            "not_checked": [u.to_dict() for u in self.unchecked],
        }
