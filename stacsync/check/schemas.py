"""Validate STAC objects against the offline JSON schemas, never touching the network.

The schema store is a folder laid out by URL with a `urlmap.json` index (see its README);
by default the copy packaged in `stacsync/schemas`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import cached_property
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from stacsync.core.errors import StacsyncError

CORE_SCHEMAS: dict[tuple[str, str], str] = {
    (version, kind): f"https://schemas.stacspec.org/v{version}/{path}"
    for version in ("1.0.0", "1.1.0")
    for kind, path in (
        ("Feature", "item-spec/json-schema/item.json"),
        ("Collection", "collection-spec/json-schema/collection.json"),
        ("Catalog", "catalog-spec/json-schema/catalog.json"),
    )
}


class SchemaStoreError(StacsyncError):
    """The offline schema store is missing, broken, or lacks a schema that is referenced."""


def packaged_schemas() -> Traversable:
    """The schema store shipped inside the stacsync package."""
    return files("stacsync") / "schemas"


class SchemaValidator:
    """Check STAC Items, Collections and Catalogs against core and extension schemas.

    `schema_root` is a store folder; by default the packaged copy (`packaged_schemas()`).
    """

    def __init__(self, schema_root: str | os.PathLike[str] | Traversable | None = None) -> None:
        # A Traversable, not a Path: the package may live in a zip or a wheel cache.
        self.root: Path | Traversable = (
            packaged_schemas() if schema_root is None else _as_root(schema_root)
        )
        urlmap = self.root / "urlmap.json"
        try:
            self._map: dict[str, str] = json.loads(urlmap.read_text(encoding="utf-8"))["map"]
        except (OSError, ValueError, KeyError) as exc:
            raise SchemaStoreError(f"cannot read schema index {urlmap}: {exc}") from exc
        self._validators: dict[str, Draft7Validator] = {}

    def knows(self, url: str) -> bool:
        """Whether the store holds the schema at `url` (fragment ignored)."""
        return _strip(url) in self._map

    def errors(self, obj: dict[str, Any]) -> list[str]:
        """Return every problem found, each message naming the JSON path; [] when valid."""
        if not isinstance(obj, dict):
            return [f"$: expected a JSON object, got {type(obj).__name__}"]
        problems: list[str] = []
        core = CORE_SCHEMAS.get((str(obj.get("stac_version")), str(obj.get("type"))))
        if core is None:
            problems.append(
                f"$: no core schema for type={obj.get('type')!r} "
                f"stac_version={obj.get('stac_version')!r}"
            )
        elif not self.knows(core):
            problems.append(
                f"$: no core schema for type={obj.get('type')!r} "
                f"stac_version={obj.get('stac_version')!r} in the offline schema store"
            )
        else:
            problems.extend(self._check(core, obj))
        extensions = obj.get("stac_extensions", [])
        if not isinstance(extensions, list):
            return [*problems, "$.stac_extensions: must be an array of schema URLs"]
        for i, url in enumerate(extensions):
            if not isinstance(url, str) or not self.knows(url):
                problems.append(
                    f"$.stac_extensions[{i}]: unknown extension schema {url!r} "
                    "(not in the offline schema store)"
                )
                continue
            problems.extend(f"{msg} [{url}]" for msg in self._check(url, obj))
        return problems

    def _check(self, url: str, obj: dict[str, Any]) -> list[str]:
        validator = self._validator(url)
        try:
            found = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:  # referencing wraps the retriever's error in its own
            raise SchemaStoreError(f"schema {url} cannot be resolved offline: {exc}") from exc
        return [_message(_leaf(err)) for err in found]

    def _validator(self, url: str) -> Draft7Validator:
        if url not in self._validators:
            self._validators[url] = Draft7Validator({"$ref": url}, registry=self._registry)
        return self._validators[url]

    @cached_property
    def _registry(self) -> Registry:
        return Registry(retrieve=self._retrieve)  # type: ignore[call-arg]

    def _retrieve(self, uri: str) -> Resource:
        """Load a schema by URL from the store; anything not in the map is refused loudly."""
        rel = self._map.get(_strip(uri))
        if rel is None:
            raise SchemaStoreError(f"schema {uri} is not in the offline store {self.root}")
        path = self.root
        for part in rel.split("/"):  # one segment at a time: zip-backed roots need it
            path = path / part
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaStoreError(f"cannot read schema {path}: {exc}") from exc
        return Resource.from_contents(contents, default_specification=DRAFT7)


def _as_root(root: str | os.PathLike[str] | Traversable) -> Path | Traversable:
    return Path(root) if isinstance(root, str | os.PathLike) else root


def _strip(url: str) -> str:
    return url.split("#", 1)[0]


def _leaf(error: ValidationError) -> ValidationError:
    """Descend through oneOf/anyOf/if-then noise to the error that names the real field."""
    while error.context:
        deeper = best_match(_deepest(error.context))
        if deeper is None:
            break
        error = deeper
    return error


def _deepest(errors: list[ValidationError]) -> Iterator[ValidationError]:
    """Keep the errors that reach furthest into the instance: they name the field."""
    depth = max(len(e.absolute_path) for e in errors)
    return (e for e in errors if len(e.absolute_path) == depth)


def _message(error: ValidationError) -> str:
    return f"{error.json_path}: {error.message}"
