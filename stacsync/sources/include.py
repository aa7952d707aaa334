"""Which source paths are cataloged: `source.include` and `source.exclude`, matched per file.

Called once per listed file, so each pair of pattern lists is compiled once.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable

from stacsync.config.settings import Settings


def is_included(settings: Settings, relpath: str) -> bool:
    """Whether a path relative to the source is to be cataloged (exclude wins over include)."""
    return _matcher(settings.include, settings.exclude)(relpath.lstrip("/"))


def _compile(patterns: tuple[str, ...]) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """One regex for the name patterns and one for the path patterns."""
    names = [fnmatch.translate(p) for p in patterns if "/" not in p]
    paths = [fnmatch.translate(p) for p in patterns if "/" in p]
    return (
        re.compile("|".join(names), re.IGNORECASE) if names else None,
        re.compile("|".join(paths), re.IGNORECASE) if paths else None,
    )


@functools.lru_cache(maxsize=32)
def _matcher(include: tuple[str, ...], exclude: tuple[str, ...]) -> Callable[[str], bool]:
    include_name, include_path = _compile(include)
    exclude_part, exclude_path = _compile(exclude)

    def included(relpath: str) -> bool:
        if exclude_path is not None and exclude_path.match(relpath):
            return False
        parts = relpath.split("/")
        if exclude_part is not None and any(exclude_part.match(p) for p in parts):
            return False
        if include_name is not None and include_name.match(parts[-1]):
            return True
        return include_path is not None and include_path.match(relpath) is not None

    return included
