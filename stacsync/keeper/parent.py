"""Tell a catalog's keeper about ours: add one `child` link to it in their parent catalog.

One read, an idempotent edit that keeps everything else in the parent, one atomic write.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from stacsync.catalog.links import JSON_TYPE, Links
from stacsync.core.atomic import atomic_writer
from stacsync.core.errors import StacsyncError

_PARENT_TYPES = ("Catalog", "Collection")  # STAC lets both hold `child` links
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ParentCatalogError(StacsyncError):
    """The parent catalog cannot be read, understood or written; the message says which."""


class ParentStore(Protocol):
    """Where the parent catalog lives. Both methods raise OSError (or a StacsyncError).

    `LocalParentStore` below for a local or mounted file; `parent_irods.IrodsParentStore` for
    one in iRODS. `stacsync.pipeline.assemble.make_parent_store` picks one, beside the output.
    """

    def read(self, path: str) -> bytes:
        """The whole file."""
        ...

    def write(self, path: str, data: bytes) -> None:
        """Replace the file atomically: readers see the old bytes or the new, never half."""
        ...


class LocalParentStore:
    """A parent catalog on a local or mounted file system."""

    def read(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write(self, path: str, data: bytes) -> None:
        # Write through a symlink to its target: replacing the link itself would cut the
        # keeper's file loose from wherever they point it.
        target = Path(path).resolve()
        mode = target.stat().st_mode & 0o7777
        # A directory we may write lets os.replace swap even a read-only file; the keeper's
        # read-only bit is their "do not touch", so it is honoured.
        if not os.access(target, os.W_OK):
            raise PermissionError(13, "Permission denied (file is read-only)", str(target))
        # The keeper's permissions, not mkstemp's 0600 or our 0644.
        with atomic_writer(target, mode=mode) as out:
            out.write(data)


def child_href(parent_path: str, child_path: str, child_url: str | None = None) -> str:
    """The href the parent should hold for our catalog (or collection) file.

    With a public URL for our file (`[output] public_url` + the file's path) the href is that
    absolute URL: the parent may be served from another host or tree, and an absolute URL
    reaches us from anywhere. Without one, both files are paths on the same store (local,
    mounted, or iRODS) and the href is relative to the parent's folder, "./"-prefixed as
    stacsync writes its own links; such a link works wherever both trees are copied together.
    """
    return child_url or Links(None).href(parent_path, child_path)


def link_into_parent(
    store: ParentStore, parent_path: str, child_href: str, title: str | None = None
) -> bool:
    """Add a `child` link to `child_href` into the parent catalog; True if the file was written.

    Nothing is written when any link of the parent already resolves to the same place
    (relative hrefs resolve against the parent's `self` URL when it has one, else against
    `parent_path`). Everything else in the parent is kept, in its order; the JSON is
    re-indented the way the file was. Raises ParentCatalogError with a message for a person
    when the parent is missing, unreadable, not JSON, not a catalog, or cannot be written.

    Between our read and our write another writer's edit of the parent would be lost; the
    call is meant for the moment a catalog is first published, not for every pass.
    """
    raw = _read(store, parent_path)
    text, parent = _parse(raw, parent_path)
    links = _links(parent, parent_path)
    base = _base(links, parent_path)
    wanted = resolve_href(base, child_href)
    if wanted == resolve_href(base, posixpath.basename(parent_path)):
        raise ParentCatalogError(
            f"parent catalog {parent_path}: it is our own catalog; "
            "parent_catalog must name another catalog"
        )
    if any(resolve_href(base, href) == wanted for href in _hrefs(links)):
        return False
    new_link: dict[str, str] = {"rel": "child", "href": child_href, "type": JSON_TYPE}
    if title:
        new_link["title"] = title
    links.append(new_link)
    data = _dump_like(text, parent)
    try:
        store.write(parent_path, data)
    except (OSError, StacsyncError) as exc:
        raise ParentCatalogError(
            f"parent catalog {parent_path}: cannot write: {_why(exc)}"
        ) from exc
    return True


def resolve_href(base: str, href: str) -> str:
    """`href` as an absolute, normalised URL or path, for comparing links.

    `base` is the URL or path of the file holding the link. Scheme and host are lower-cased,
    default ports, dot segments, percent-escapes and fragments removed; file:// URLs become
    paths.
    """
    parts = urlsplit(href)
    if parts.scheme == "file":
        return _norm_path(unquote(parts.path))
    if _is_url(parts.scheme):
        return _norm_url(href)
    if _is_url(urlsplit(base).scheme):
        return _norm_url(urljoin(base, href))
    base_path = unquote(urlsplit(base).path) if base.startswith("file:") else base
    path = unquote(parts.path)
    if not path.startswith("/"):
        path = posixpath.join(posixpath.dirname(base_path) or ".", path)
    return _norm_path(path)


def _is_url(scheme: str) -> bool:
    return len(scheme) > 1  # one letter is a Windows drive, not a scheme


def _norm_path(path: str) -> str:
    return posixpath.normpath(path) if path else path


def _norm_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    try:
        port = parts.port
    except ValueError:  # "host:abc": not a port; compare such an href as written
        return url
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    if parts.username:
        host = f"{parts.username}@{host}"
    path = posixpath.normpath(unquote(parts.path)) if parts.path else "/"
    if parts.path.endswith("/") and path != "/":
        path += "/"  # a folder and a file of the same name are different resources
    return urlunsplit((scheme, host, path, parts.query, ""))


def _read(store: ParentStore, path: str) -> bytes:
    try:
        return store.read(path)
    except FileNotFoundError as exc:
        raise ParentCatalogError(f"parent catalog {path}: not found") from exc
    except (OSError, StacsyncError) as exc:
        raise ParentCatalogError(f"parent catalog {path}: cannot read: {_why(exc)}") from exc


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; writing them back would produce a file others reject.
    raise ValueError(f"{name} is not valid JSON")


def _parse(raw: bytes, path: str) -> tuple[str, dict[str, Any]]:
    try:
        text = raw.decode("utf-8-sig")
        parent = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ParentCatalogError(f"parent catalog {path}: not JSON: {exc}") from exc
    if not isinstance(parent, dict) or parent.get("type") not in _PARENT_TYPES:
        found = parent.get("type") if isinstance(parent, dict) else type(parent).__name__
        raise ParentCatalogError(
            f"parent catalog {path}: not a STAC catalog (type is {found!r}, "
            "expected 'Catalog' or 'Collection')"
        )
    return text, parent


def _links(parent: dict[str, Any], path: str) -> list[Any]:
    links = parent.setdefault("links", [])
    if not isinstance(links, list):
        raise ParentCatalogError(f"parent catalog {path}: `links` is not an array")
    return links


def _hrefs(links: list[Any]) -> list[str]:
    # A keeper's hand-edited link may lack an href or not be an object: skip it, keep it.
    return [x["href"] for x in links if isinstance(x, dict) and isinstance(x.get("href"), str)]


def _base(links: list[Any], parent_path: str) -> str:
    """What the parent's relative hrefs are relative to: its absolute self URL, else its path."""
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "self":
            href = link.get("href")
            if isinstance(href, str) and _is_url(urlsplit(href).scheme):
                return href
    return parent_path


def _dump_like(original: str, obj: dict[str, Any]) -> bytes:
    """Serialise `obj` indented like `original` (a keeper's diff then shows only our link)."""
    found = re.search(r"\n([ \t]+)\S", original)
    indent: str | None = found.group(1) if found else None
    if indent is None and "\n" in original.strip():
        indent = ""  # multi-line but flush left
    text = json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False)
    if original.endswith("\n"):
        text += "\n"
    return text.encode("utf-8")
