"""The `stacsync` entry point: a `rescan --config` with nothing changed, proven from a witness.

The last full one-shot pass left the witness (`pipeline.witness`); anything it cannot vouch for
runs the whole command line (`cli.main`), which then does exactly what it always did.
"""

from __future__ import annotations

# Only the standard library's cheapest modules up here: every `stacsync` command starts here.
import os
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (checkers know the idiom)
if TYPE_CHECKING:
    from stacsync.manifest.witness import Witness

QUIET = ("-q", "--quiet")


def main() -> None:
    """Console-script entry point: the fast path when it can answer, else the full CLI."""
    request = parse(sys.argv[1:])
    if request is not None and answer(*request):
        return
    from stacsync.cli.main import main as full_main

    full_main()


def parse(args: list[str]) -> tuple[str, bool] | None:
    """(config, as_json) for `[-q] rescan --config FILE [--json]`; None for anything else.

    Only these spellings; any other option (`-v` shows the pass's log lines) goes to click.
    """
    rest = list(args)
    while rest and rest[0] in QUIET:
        rest.pop(0)
    if not rest or rest.pop(0) != "rescan":
        return None
    config: str | None = None
    as_json = False
    while rest:
        arg = rest.pop(0)
        if arg == "--json" and not as_json:
            as_json = True
        elif arg in ("--config", "-c") and config is None and rest:
            config = rest.pop(0)
        elif arg.startswith("--config=") and config is None:
            config = arg.removeprefix("--config=")
        else:
            return None
    if not config or config.startswith("-"):
        return None
    return config, as_json


def answer(config: str, as_json: bool) -> bool:
    """Record and print a no-change pass if the witness proves one; False to run the full pass."""
    started = time.monotonic()
    try:
        answered = no_change_pass(config, started)
    except Exception:
        # Whatever went wrong here, the full pass finds it again and reports it its own way.
        return False
    if answered is None:
        return False
    from stacsync.core import tree

    tree.forget_walk()  # answered: no pass follows to list from it
    summary, text = answered
    if as_json:
        sys.stdout.write(text + "\n")  # what the full pass's json.dumps writes, without json
    else:
        from stacsync.cli.report import human_summary  # not click: ~30 ms to import

        sys.stdout.write(human_summary(summary) + "\n")
    return True


def no_change_pass(config: str, started: float) -> tuple[dict, str] | None:
    """The summary of a recorded no-change pass and its JSON text, or None when the witness
    cannot vouch."""
    from stacsync.core.clock import now_iso
    from stacsync.manifest import witness

    begun = now_iso()
    # As the loader makes it absolute; the witness names the file it was left under.
    config_path = absolute(os.path.expanduser(config))
    with open(config_path, "rb") as f:
        data = f.read()
    manifest_path = witness.manifest_file_in(config_path, data.decode("utf-8"))
    if manifest_path is None:
        return None
    db = witness.FastWriter.open(manifest_path)
    if db is None:
        return None
    with db:
        found = witness.vouched(db.conn)
        if found is None or not _same_inputs(found, config_path, manifest_path, data):
            return None
        if not _same_output(found) or not _same_tree(found):
            return None
        if not witness.unchanged(db.conn, found):
            return None
        seconds = round(time.monotonic() - started, 3)
        text = witness.summary_json(found.summary_json, seconds)
        db.record_no_change_pass(begun, text)
    return {**found.summary, "seconds": seconds}, text


def absolute(path: str) -> str:
    """`str(Path(path).absolute())` without pathlib (~4 ms to import with what it pulls in).

    Joined to the working folder, `.`, empty names and a trailing `/` dropped, `..` kept (it
    may cross a link): the spelling `pipeline.witness` stored, or the witness does not vouch.
    """
    start = path if path.startswith("/") else os.getcwd()
    # POSIX gives exactly two leading slashes a meaning of their own: pathlib keeps them.
    root = "//" if start.startswith("//") and not start.startswith("///") else "/"
    names = path if start == path else f"{start}/{path}"
    return root + "/".join(name for name in names.split("/") if name and name != ".")


def _same_inputs(found: Witness, config_path: str, manifest_path: str, data: bytes) -> bool:
    """The same config bytes, home, manifest, code and metadata tables as the witnessed pass."""
    from stacsync.manifest import witness

    return (
        found.config_path == config_path
        and found.config_sha256 == witness.digest(data)
        and found.home == os.environ.get("HOME")
        and found.manifest_path == manifest_path
        and found.code == witness.code_stamp()
        and all(witness.file_stat(p) == st for p, st in found.side_files.items())
    )


def _same_output(found: Witness) -> bool:
    """The output writable, with every file a pass re-renders when it is missing.

    As `LocalOutput.check_writable` and `exists` see them (that module costs more imports).
    """
    root = found.output_root
    if not os.path.isdir(root) or not os.access(root, os.W_OK | os.X_OK):
        return False
    return all(os.path.isfile(os.path.join(root, f)) for f in found.output_files)


def _same_tree(found: Witness) -> bool:
    """The source tree as the pass's walk saw it: same names, kinds, sizes, mtimes; settled."""
    from stacsync.core import tree

    walked = tree.walk(found.source_root, frozenset(found.unwalked))
    if walked != (found.tree_entries, found.tree_sha256):
        return False
    # Unchanged files younger than settle_seconds are deferred by a full pass, not unchanged.
    return not found.settle_ns or found.newest_mtime_ns <= time.time_ns() - found.settle_ns


if __name__ == "__main__":
    main()
