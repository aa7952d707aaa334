"""The rescan witness: what a full one-shot pass listed, under which config, code and manifest.

`cli/fast.py` checks it to prove that nothing changed without loading the pass machinery.
"""

from __future__ import annotations

# Cheap imports only: this is on the path of every no-change `stacsync rescan`. No typing or
# pathlib (~4 ms each), no json (it imports re and enum: ~7 ms); the records are namedtuples,
# not dataclasses (`inspect`, ~6 ms) nor typing.NamedTuple (it compiles each annotation).
import marshal  # built in, and loaded with the interpreter
import os
from collections import namedtuple

from stacsync.core.sha256 import sha256  # not hashlib's: loading OpenSSL costs ~2 ms

try:
    # sqlite3's C core, all that `sqlite3` re-exports: the package adds adapters for datetime,
    # never bound here, and importing datetime for them costs ~2 ms of a ~50 ms rescan.
    from _sqlite3 import connect as sqlite_connect
except ImportError:  # a Python laid out otherwise
    from sqlite3 import connect as sqlite_connect

from stacsync.core.clock import now_iso
from stacsync.core.errors import ManifestLockedError
from stacsync.manifest.lock import ManifestLock
from stacsync.manifest.schema import SCHEMA_VERSION
from stacsync.manifest.state import RESCAN_WITNESS_KEY, RESCAN_WITNESS_PASS_KEY, PassState

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (checkers know the idiom)
if TYPE_CHECKING:
    import sqlite3
    from pathlib import Path
    from typing import Any

    from stacsync.manifest.db import Manifest

# A new value voids every stored witness (their fields or meaning changed).
WITNESS_FORMAT = 3
# The manifest when `[manifest] path` is absent. The fast path does not load the config, so it
# reads this one key itself; `pipeline.witness` leaves a witness only when that agrees with
# the loader, so a disagreement costs the fast path, never a wrong result.
DEFAULT_MANIFEST = "stacsync.db"


class ManifestFacts(
    namedtuple(
        "ManifestFacts",
        [
            "files",  # int
            "needing_look",  # int: files the next pass examines whatever their size and mtime
            "errors",  # int
            "with_problems",  # int: files with a layout remark (`files_without_rows`)
            "dirty_items",  # int
            "skipped",  # int: paths a listing skipped (a pass that skips none forgets them)
            "state_sha256",  # str: fingerprints, cached summaries, what the keeper was told
            "written_sha256",  # str: hashes of the catalog files written
        ],
    )
):
    """What a pass reads of the manifest besides the witness: equal facts, equal pass."""

    __slots__ = ()


class Witness(
    namedtuple(
        "Witness",
        [
            "config_path",  # str: absolute, as the loader makes it
            "config_sha256",  # str: of the bytes the pass loaded
            "home",  # str | None: `~` in the config's paths expanded against it
            "code",  # str: `code_stamp()` of the stacsync that ran the pass
            "manifest_path",  # str
            "source_root",  # str
            "tree_entries",  # int: `core.tree`: every name the pass's walk saw, and their stats
            "tree_sha256",  # str
            "unwalked",  # tuple[str, ...]: folders seen but not walked (the output in the source)
            "newest_mtime_ns",  # int: of the listed files
            "settle_ns",  # int: files younger than this are deferred, not unchanged
            # dict[str, list[int] | None]: metadata tables, outside the tree: [size, mtime_ns],
            # or None when missing.
            "side_files",
            "output_root",  # str
            "output_files",  # tuple[str, ...]: the files a pass re-renders when missing
            "summary",  # dict[str, Any]: what the no-change pass reports, but `seconds`
            "summary_json",  # tuple[str, str]: `summary_json_parts` of it
            "manifest",  # ManifestFacts: as the witnessed pass left it
            "racy_window_ns",  # int: the pass's rule, so that checking it needs no pipeline import
            "schema_version",  # int
            "format",  # int
        ],
        defaults=(SCHEMA_VERSION, WITNESS_FORMAT),
    )
):
    """What a no-change rescan must find again, and the summary it then reports."""

    __slots__ = ()

    def to_bytes(self) -> bytes:
        """Marshalled, not JSON: json imports re and enum, ~7 ms of a ~40 ms no-change rescan.
        The manifest is stacsync's own file, as trusted as its bytecode cache."""
        # Not sorted: the summary's mappings keep the order a full pass prints them in.
        return marshal.dumps({**self._asdict(), "manifest": tuple(self.manifest)})

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Witness | None:
        """The stored witness; None when absent, unreadable or of another format."""
        if not isinstance(data, bytes):  # absent, or the JSON text of an older stacsync
            return None
        try:
            fields = marshal.loads(data)
            if fields.get("format") != WITNESS_FORMAT:
                return None
            fields["manifest"] = ManifestFacts(*fields["manifest"])
            return cls(**fields)
        except (ValueError, TypeError, KeyError, AttributeError, EOFError):
            return None


def summary_json_parts(summary: dict[str, Any]) -> tuple[str, str]:
    """(head, tail): `json.dumps({**summary, "seconds": s}, sort_keys=True)` is head + repr(s)
    + tail, as `summary_json` joins them.

    Cut by the full pass that leaves the witness, so that the no-change pass prints and
    records the full pass's text without importing json.
    """
    import json

    def members(part: dict[str, Any]) -> str:
        return json.dumps(part, sort_keys=True)[1:-1]  # `"k": v, …`, without the braces

    before = members({k: v for k, v in summary.items() if k < "seconds"})
    after = members({k: v for k, v in summary.items() if k > "seconds"})
    return "{" + (before and before + ", ") + '"seconds": ', (after and ", " + after) + "}"


def summary_json(parts: tuple[str, str], seconds: float) -> str:
    """The JSON summary of a no-change pass that took `seconds` (json writes a float's repr)."""
    return f"{parts[0]}{seconds!r}{parts[1]}"


# -- what the witness compares -----------------------------------------------------------


def digest(data: bytes) -> str:
    return sha256(data).hexdigest()


def code_stamp() -> str:
    """Names, sizes and mtimes of this stacsync's modules: other code may pass differently.

    A stat per module (~0.3 ms); an upgrade or an edited checkout voids every witness.
    """
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the stacsync package
    found: list[str] = []
    folders = [root]
    while folders:
        folder = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    folders.append(entry.path)
                elif entry.name.endswith(".py"):
                    st = entry.stat()
                    found.append(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}\0")
    return digest("".join(sorted(found)).encode("utf-8", "surrogateescape"))


def file_stat(path: str | os.PathLike) -> list[int] | None:
    """[size, mtime_ns] of a file, None when it is missing (what the layout fingerprint sees)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def manifest_path_in(config_path: Path, text: str) -> Path | None:
    """`[manifest] path` of a config, resolved as the loader does; None when not plainly said."""
    from pathlib import Path  # not on the fast path, which uses `manifest_file_in`

    found = manifest_file_in(str(config_path), text)
    return None if found is None else Path(found)


def manifest_file_in(config_path: str, text: str) -> str | None:
    """`manifest_path_in` as a string, for a config path spelled as `str(Path)` spells it.

    Reads only the plain forms (`path = "…"` or `'…'` under `[manifest]`, or no such key),
    without tomllib (~7 ms to import): anything else is None, and no witness is left for it.
    """
    table, value = None, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            table = line.partition("#")[0].strip().strip("[]").strip()
            continue
        key, eq, rest = line.partition("=")
        key = key.strip()
        if table is None and key.startswith(("manifest", '"manifest', "'manifest")):
            return None  # a dotted key or an inline table: not a plain form
        if table != "manifest" or key != "path":
            continue
        if not eq or value is not None:
            return None
        value = _plain_string(rest.strip())
        if value is None:
            return None
    path = os.path.expanduser(value or DEFAULT_MANIFEST)
    # normpath's result is already as `Path` spells it (no `.`, `//` or trailing `/`).
    return os.path.normpath(os.path.join(os.path.dirname(config_path), path))


def _plain_string(text: str) -> str | None:
    """The value of a one-line TOML string without escapes (and an optional comment)."""
    if len(text) < 2 or text[0] not in "\"'":
        return None
    quote = text[0]
    end = text.find(quote, 1)
    if end < 0 or text.startswith(quote * 3):
        return None
    value, after = text[1:end], text[end + 1 :].strip()
    if (quote == '"' and "\\" in value) or (after and not after.startswith("#")) or not value:
        return None
    return value


# -- the manifest's side -----------------------------------------------------------------


def facts_of(conn: sqlite3.Connection, racy_window_ns: int) -> ManifestFacts:
    """Read them: one scan of the files, the small tables whole (a few ms at 10,000 files).

    Whatever wrote the manifest since the witness, even without recording a pass, shows here.
    """
    # The same rule as the pass's diff: pending, a transient error, or an mtime within the
    # racy window of the stat that recorded it (it may have changed within that tick).
    files, needing_look, errors, with_problems = conn.execute(
        "SELECT count(*),"
        " count(*) FILTER (WHERE status = 'pending' OR (status = 'error' AND error_transient)"
        "  OR (status NOT IN ('error', 'pending') AND mtime_ns + ? >= scanned_ns)),"
        " count(*) FILTER (WHERE status = 'error'),"
        " count(*) FILTER (WHERE problem IS NOT NULL) FROM asset_file",
        (racy_window_ns,),
    ).fetchone()
    dirty = conn.execute("SELECT count(*) FROM item WHERE dirty = 1").fetchone()[0]
    skipped = conn.execute("SELECT count(*) FROM skipped").fetchone()[0]
    state = conn.execute(
        "SELECT key, value FROM state WHERE key NOT IN (?, ?) ORDER BY key",
        (RESCAN_WITNESS_KEY, RESCAN_WITNESS_PASS_KEY),
    ).fetchall()
    written = conn.execute("SELECT path, hash FROM written ORDER BY path").fetchall()
    return ManifestFacts(
        files=files,
        needing_look=needing_look,
        errors=errors,
        with_problems=with_problems,
        dirty_items=dirty,
        skipped=skipped,
        # repr, not json: the same rows give the same text, and no json import (see above).
        state_sha256=digest(repr(state).encode()),
        written_sha256=digest(repr(written).encode()),
    )


def last_pass(conn: sqlite3.Connection) -> tuple[int, bool] | None:
    """(id, finished) of the latest pass, None before the first."""
    row = conn.execute("SELECT id, finished FROM pass ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), row[1] is not None)


def vouched(conn: sqlite3.Connection) -> Witness | None:
    """The stored witness, if the pass it vouches for is the latest, finished, pass.

    Any other pass since (the daemon's, a crashed one, one that left none) voids it; so does
    any other change to what a pass reads of the manifest, which `unchanged` checks.
    """
    state = PassState(conn)
    witness_pass = state.rescan_witness_pass
    if witness_pass is None or last_pass(conn) != (witness_pass, True):
        return None
    witness = Witness.from_bytes(state.rescan_witness)
    if witness is None or witness.schema_version != SCHEMA_VERSION:
        return None
    return witness


def unchanged(conn: sqlite3.Connection, witness: Witness) -> bool:
    """The manifest reads as the witnessed pass left it (a scan of the files: last, as the
    costliest check after the walk, ~2 ms per 1,000 files with their metadata)."""
    return facts_of(conn, witness.racy_window_ns) == witness.manifest


def store(db: Manifest, witness: Witness | None, pass_id: int | None) -> None:
    """Keep the witness of pass `pass_id`, or drop any witness with None."""
    with db.transaction():
        db.state.rescan_witness = None if witness is None else witness.to_bytes()
        db.state.rescan_witness_pass = None if witness is None else pass_id


class FastWriter:
    """The manifest opened as `Manifest.open_writer` opens it, for a no-change pass only.

    Never creates, migrates or waits: `open` gives None when the database is missing, locked
    or at another schema version, and the full pass then does what it always does.
    """

    def __init__(self, conn: sqlite3.Connection, lock: ManifestLock):
        self.conn = conn
        self._lock = lock

    @classmethod
    def open(cls, path: str | os.PathLike) -> FastWriter | None:
        if not os.path.isfile(path):
            return None
        lock = ManifestLock(path)
        try:
            lock.acquire("stacsync rescan")
        except ManifestLockedError:
            return None
        try:
            # mode=rw: never create a database here (the full pass decides that).
            uri = f"{_file_uri(os.path.realpath(path))}?mode=rw"
            conn = sqlite_connect(uri, uri=True, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            lock.release()
            raise
        writer = cls(conn, lock)
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            writer.close()
            return None
        return writer

    def record_no_change_pass(self, started: str, summary_text: str) -> None:
        """Record the pass as `Manifest.begin_pass` + `finish_pass` do, still witnessed."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self.conn.execute("INSERT INTO pass (started) VALUES (?)", (started,))
            self.conn.execute(
                "UPDATE pass SET finished = ?, summary_json = ? WHERE id = ?",
                (now_iso(), summary_text, cur.lastrowid),
            )
            PassState(self.conn).rescan_witness_pass = cur.lastrowid
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
        self._lock.release()

    def __enter__(self) -> FastWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# What urllib.parse.quote leaves as it is (with "/"): that module costs ~3 ms to import.
_URI_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~/")


def _file_uri(path: str) -> str:
    """`Path(path).as_uri()` for an absolute path: its bytes, percent-encoded."""
    return "file://" + "".join(chr(b) if b in _URI_SAFE else f"%{b:02X}" for b in os.fsencode(path))
