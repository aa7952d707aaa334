"""What the config registry is made of: a `Key` (one setting) and a `Section` (one TOML table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""The default of a key that has none: the loader reports it as `required` when absent."""


@dataclass(frozen=True)
class Key:
    """One setting: its name, kind, default and the help shown in docs and generated configs."""

    name: str
    kind: str  # a name in stacsync.config.kinds.KINDS: how the value is checked and converted
    default: Any  # as written in TOML (a list, not a tuple); REQUIRED when there is none
    help: str
    example: Any = None  # a value for generated configs when the default is REQUIRED/None
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Section:
    """A TOML table (`[name]`), array of tables (`[[name]]`) or free-form map of one section."""

    name: str  # dotted: "source", "collection.table"
    help: str
    keys: tuple[Key, ...] = ()
    array: bool = False  # [[name]]
    optional: bool = False  # absent -> None instead of a table of defaults
    free_form: str | None = None  # user-chosen keys; the values' kind ("str" or "any")
    min_items: int = 0

    @property
    def short(self) -> str:
        return self.name.rpartition(".")[2]
