"""benchmarks/profile_pass still profiles a whole pass, the workers' share included.

It stands in for the pass's thread pool, so a change to how the pipeline uses the pool can
break it without any other test noticing (it once did).
"""

from __future__ import annotations

import cProfile
import pstats

import stacsync.pipeline.extraction
from benchmarks.profile_pass import profiled_rescan, report
from stacsync.demo import demo_config_toml, make_demo_tree


def test_profile_pass_profiles_a_first_build_and_puts_the_pool_back(tmp_path, capsys):
    tree = make_demo_tree(tmp_path / "data", missions=2, raster_size=32, points=50)
    config = tmp_path / "stacsync.toml"
    text = demo_config_toml(tree, tmp_path / "catalog", tmp_path / "stacsync.db")
    config.write_text(text + "\n[extract]\nworkers = 1\n", encoding="utf-8")
    pool = stacsync.pipeline.extraction.ThreadPoolExecutor

    profiler = cProfile.Profile()
    profiler.runcall(profiled_rescan, config)

    assert '"added": 14' in capsys.readouterr().out  # 2 missions of 7 files
    assert len(list((tmp_path / "catalog").rglob("*.json"))) == 4  # catalog, collection, items
    stats = report(pstats.Stats(profiler), 400)
    assert "extract_raster" in stats  # the extraction ran where the profiler sees it
    assert stacsync.pipeline.extraction.ThreadPoolExecutor is pool
