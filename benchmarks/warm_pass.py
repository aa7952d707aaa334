"""No-change passes inside one running process, as `stacsync run` polls, beside a bare walk.

Usage: python -m benchmarks.warm_pass CONFIG ROOT RUNS → JSON of per-run seconds and peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from benchmarks.bare_walk import walk
from stacsync.config.load import load_settings
from stacsync.manifest.db import Manifest
from stacsync.pipeline.sync import SyncPass


def main() -> None:
    config, root, runs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    settings = load_settings(config)
    passes, walks = [], []
    # The manifest stays open and locked between passes, as the daemon keeps it.
    with Manifest.open_writer(settings.manifest_path, purpose="benchmark warm passes") as db:
        SyncPass(settings, db).run()  # warm: imports done, page cache filled
        for _ in range(runs):
            started = time.perf_counter()
            summary = SyncPass(settings, db).run()
            passes.append(time.perf_counter() - started)
            if summary.added or summary.modified or summary.removed or summary.items_written:
                raise SystemExit(f"not a no-change pass: {summary.to_dict()}")
            started = time.perf_counter()
            walk(root)
            walks.append(time.perf_counter() - started)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"pass": passes, "walk": walks, "rss_mb": rss_mb}))


if __name__ == "__main__":
    main()
