"""Config regexes matched against file paths in linear time (RE2), whatever a name holds.

A file name is chosen by whoever writes to the store: no name may stall a pass by backtracking.
"""

from __future__ import annotations

import re2

# RE2 semantics differ from Python's `re` in what they refuse, never in how long a match takes.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print its own copy of every error to stderr
_OPTIONS.dot_nl = True  # names can hold newlines: `.` stands for any character of a path
_OPTIONS.max_mem = 8 << 20  # a pattern whose automaton is bigger is refused, not built


class PathPattern:
    """A compiled `collection.match`: RE2 syntax with Python's `(?P<name>…)` groups."""

    def __init__(self, text: str):
        self.text = text
        try:
            self._regexp = re2.compile(text, _OPTIONS)
        except re2.error as exc:
            raise ValueError(_reason(text, exc)) from None
        self.groupindex: dict[str, int] = dict(self._regexp.groupindex)

    def search(self, path: str) -> dict[str, str] | None:
        """The named groups that matched non-empty text (exact slices of `path`), or None.

        A name that is not UTF-8 carries surrogate escapes (`os.fsdecode`), which RE2 cannot
        take: each is matched as U+FFFD, one character for one, so the groups still slice the
        original path and no two names share a group value.
        """
        found = self._regexp.search(_matchable(path))
        if found is None:
            return None
        groups = {}
        for name, index in self.groupindex.items():
            start, end = found.span(index)
            if start >= 0 and end > start:
                groups[name] = path[start:end]
        return groups

    def __repr__(self) -> str:
        return f"PathPattern({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PathPattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def _matchable(path: str) -> str:
    if path.isascii():
        return path
    return "".join("\ufffd" if 0xDC80 <= ord(ch) <= 0xDCFF else ch for ch in path)


def _reason(text: str, exc: Exception) -> str:
    message = exc.args[0] if exc.args else exc
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    hint = ""
    if "invalid perl operator: (?<" in message or "(?=" in message or "(?!" in message:
        hint = "; lookahead and lookbehind are not supported (RE2 syntax)"
    elif "invalid escape sequence: \\" in message and any(f"\\{d}" in text for d in "123456789"):
        hint = "; backreferences are not supported (RE2 syntax)"
    elif "pattern too large" in message:
        hint = "; the pattern needs more than 8 MB to match in linear time"
    return f"invalid regex: {message}{hint}"
