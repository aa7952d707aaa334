"""Benchmark stacsync over S3: requests and bytes per file, and a no-change poll (issue 16).

Usage: python -m benchmarks.s3 [--workdir DIR] [--objects 10000] [--copc-python PY]
       [--markdown FILE]

moto_server runs on 127.0.0.1 (a port it picks) behind the tests' relay (tests/s3server.py,
reused: its `FaultProxy` with a request handler that also logs each answer's status and body
bytes). Every figure is the server's view of `stacsync rescan` run as a process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TESTDATA = REPO.parent / "shared" / "testdata"
sys.path.insert(0, str(REPO / "tests"))  # the tests' moto_server and relay, reused as they are

from s3server import FaultProxy, MotoServer, _Relay, moto_server_command  # noqa: E402

from benchmarks.report import machine  # noqa: E402

STACSYNC = Path(sys.executable).with_name("stacsync")
BIG_MB = 64
HEADERS_BUCKET, HEADERS_PREFIX = "headers", "data/"
POLL_BUCKET, POLL_PREFIX = "poll", "tiles/"
# Real files from ../shared/testdata, uploaded under data/testdata/.
TESTDATA_FILES = (
    "dataset_cog.tif",
    "autzen_trim.laz",
    "fullwave.laz",
    "1_4_w_evlr.laz",
    "simple.copc.laz",
    "autzen_clip_4326.copc.laz",
)
POLL_FILE = "byte.tif"
BUDGETS = {"COG": 2, "LAS/LAZ": 4, "COPC": 4}  # header GETs per file, from the issue
LOGS: Path | None = None  # where each pass's request log is written (WORKDIR/logs)


# -- the server and its request log ---------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One request as the relay answered it."""

    method: str
    path: str  # /bucket/key, unquoted
    query: dict[str, list[str]]
    range: str | None
    status: int
    body_bytes: int  # bytes of the answer's body (0 for HEAD)

    @property
    def is_list(self) -> bool:
        return self.method == "GET" and self.query.get("list-type") == ["2"]

    @property
    def op(self) -> str:
        if self.is_list:
            return "LIST"
        return self.method

    def key_in(self, bucket: str) -> str | None:
        head = f"/{bucket}/"
        return self.path[len(head) :] if self.path.startswith(head) else None


class _LoggingRelay(_Relay):
    """The tests' relay, logging each answer (status, body bytes) as it is sent."""

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        parts = urlsplit(self.path)
        sent = 0 if self.command == "HEAD" or status in (204, 304) else len(data)
        hit = Hit(
            self.command,
            unquote(parts.path),
            parse_qs(parts.query, keep_blank_values=True),
            self.headers.get("Range"),
            status,
            sent,
        )
        log: RequestLog = self.server.request_log  # type: ignore[attr-defined]
        with log.lock:
            log.hits.append(hit)
        super()._answer(status, headers, data)


@dataclass
class RequestLog:
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> list[Hit]:
        with self.lock:
            taken, self.hits = self.hits, []
        return taken


class Server:
    """moto_server and the logging relay in front of it."""

    def __init__(self, workdir: Path):
        command = moto_server_command()
        if command is None:
            raise SystemExit("moto_server not found: pip install 'moto[server]'")
        self.moto = MotoServer(command, workdir / "moto_server.log")
        self.proxy = FaultProxy(self.moto.url)
        self.log = RequestLog()
        # Reuse the tests' relay as it is; only its handler class is ours (it logs answers).
        self.proxy._server.RequestHandlerClass = _LoggingRelay
        self.proxy._server.request_log = self.log  # type: ignore[attr-defined]
        import boto3
        from botocore.config import Config

        # Uploads go straight to moto_server: only stacsync's requests pass the relay.
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.moto.url,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                max_pool_connections=64,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @property
    def endpoint(self) -> str:
        return self.proxy.url

    def put_many(self, bucket: str, objects: Iterable[tuple[str, Callable[[], bytes]]]) -> int:
        def put(item: tuple[str, Callable[[], bytes]]) -> int:
            key, body = item
            data = body()
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
            return len(data)

        with ThreadPoolExecutor(16) as pool:
            return sum(pool.map(put, list(objects)))

    def close(self) -> None:
        self.proxy.close()
        self.moto.stop()


def aws_env() -> dict[str, str]:
    """Credentials moto accepts, and nothing of the developer's own AWS setup."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")
    }
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONFAULTHANDLER="1",  # a crashing pass leaves every thread's traceback in stderr
    )
    return env


# -- one stacsync pass ----------------------------------------------------------------------


@dataclass
class Pass:
    name: str
    seconds: float
    summary: dict
    hits: list[Hit]
    written: list[str]  # output files created or changed
    logged: bool = True  # False: straight to moto_server, requests not seen
    times: list[float] = field(default_factory=list)  # every run's wall time, when repeated
    note: str = ""

    def count(self, op: str) -> int:
        return sum(1 for h in self.hits if h.op == op)

    @property
    def body_bytes(self) -> int:
        return sum(h.body_bytes for h in self.hits)

    def did(self) -> str:
        s = self.summary
        parts = [
            f"{s[k]} {k}"
            for k in ("added", "modified", "touched", "removed", "unchanged", "deferred")
            if s.get(k)
        ]
        if s.get("errors"):
            parts.append(f"{s['errors']} errors")
        if "listed" in s:
            parts.append(f"{s['listed']} keys listed")
        return ", ".join(parts) or "nothing"


class PassFailed(RuntimeError):
    def __init__(self, message: str, hits: list[Hit]):
        super().__init__(message)
        self.hits = hits


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:60]


def _save_stderr(name: str, text: str) -> Path | None:
    if LOGS is None:
        return None
    path = LOGS / f"{_slug(name)}.stderr"
    path.write_text(text, encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for path in folder.rglob("*") if folder.exists() else ():
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def rescan(
    server: Server,
    name: str,
    source: str,
    output: Path,
    manifest: Path,
    config: Path | None = None,
    *,
    direct: bool = False,
) -> Pass:
    """One `stacsync rescan --json` process: quick form, or `--config` when given; `direct`
    talks to moto_server itself, past the relay (its requests are not logged)."""
    if config is not None:
        argv = [str(STACSYNC), "rescan", "--config", str(config), "--json"]
    else:
        endpoint = server.moto.url if direct else server.endpoint
        argv = [str(STACSYNC), "rescan", source, "--endpoint-url", endpoint]
        argv += ["--output", str(output), "--manifest", str(manifest), "--json"]
    before = snapshot(output)
    server.log.take()
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=aws_env(), check=False)
    seconds = time.perf_counter() - start
    hits = server.log.take()
    if done.returncode != 0:
        where = _save_stderr(name, done.stderr)
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        raise PassFailed(
            f"{name}: stacsync died ({how}) after {seconds:.0f} s and {len(hits)} requests;"
            f" stderr in {where}",
            hits,
        )
    after = snapshot(output)
    written = sorted(k for k, v in after.items() if before.get(k) != v)
    _progress(f"  {name}: {seconds:.2f} s, {len(hits)} requests, {len(written)} files written")
    if LOGS is not None:  # every request of the pass, for a closer look
        with (LOGS / f"{_slug(name)}.jsonl").open("w", encoding="utf-8") as out:
            for h in hits:
                row = {"method": h.method, "path": h.path, "range": h.range}
                row.update(status=h.status, bytes=h.body_bytes, list=h.is_list)
                out.write(json.dumps(row) + "\n")
    return Pass(name, seconds, json.loads(done.stdout), hits, written, logged=not direct)


def repeated(runs: int, once: Callable[[], Pass]) -> Pass:
    """`once()` run `runs` times: the first run's requests, the median wall time."""
    done = [once() for _ in range(max(1, runs))]
    first = done[0]
    shapes = {tuple(sorted(Counter(h.op for h in p.hits).items())) for p in done}
    if len(shapes) > 1:
        _progress(f"  note: {first.name}: requests differ between runs: {shapes}")
    first.times = [p.seconds for p in done]
    first.seconds = statistics.median(first.times)
    return first


LIST_FLOOR = """
import sys, boto3
from botocore.config import Config
client = boto3.session.Session().client(
    "s3", endpoint_url=sys.argv[1], region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}),
)
pages = client.get_paginator("list_objects_v2").paginate(
    Bucket=sys.argv[2], Prefix=sys.argv[3], PaginationConfig={"PageSize": 1000}
)
print(sum(len(page.get("Contents", ())) for page in pages))
"""


def list_floor(server: Server, bucket: str, prefix: str, *, direct: bool = False) -> Pass:
    """The floor of a no-change pass: one process that imports boto3 and lists the prefix."""
    endpoint = server.moto.url if direct else server.endpoint
    argv = [sys.executable, "-c", LIST_FLOOR, endpoint, bucket, prefix]
    server.log.take()
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=aws_env(), check=True)
    seconds = time.perf_counter() - start
    hits = server.log.take()
    name = "floor: a process importing boto3 and listing the prefix" + (
        ", straight to moto_server" if direct else ""
    )
    _progress(f"  {name}: {seconds:.2f} s, {len(hits)} requests")
    summary = {"listed": int(done.stdout)}
    return Pass(name, seconds, summary, hits, [], logged=not direct)


def write_config(path: Path, source: str, endpoint: str, output: Path, manifest: Path) -> Path:
    """The quick form's settings as a config, with `[extract] read_overviews = false`."""
    path.write_text(
        f'[source]\nurl = "{source}"\nendpoint_url = "{endpoint}"\n\n'
        f'[output]\npath = "{output}"\n\n[manifest]\npath = "{manifest}"\n\n'
        "[extract]\nread_overviews = false\n\n"
        f'[[collection]]\nid = "data"\ntitle = "data"\nmatch = "^(?P<item>.+)$"\n',
        encoding="utf-8",
    )
    return path


# -- the files ------------------------------------------------------------------------------


def big_cog(path: Path, megabytes: int = BIG_MB) -> Path:
    """A ~`megabytes` MB RGB COG (512-px tiles, DEFLATE, overviews): RGB.byte.tif (a rotated
    scene with a nodata border) enlarged, with noise in the valid pixels so it compresses
    little."""
    if path.exists():
        return path
    import numpy as np
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(TESTDATA / "RGB.byte.tif") as src:
        side = int((megabytes * 1024 * 1024 / 3 / 0.63) ** 0.5)  # ~0.63 byte/px after DEFLATE
        height = int(side * src.height / src.width)
        data = src.read(out_shape=(3, height, side), resampling=Resampling.nearest)
        scale = src.width / side
        transform = src.transform * src.transform.scale(scale, scale)
        profile = src.profile
    valid = data.any(axis=0)
    noise = np.random.default_rng(16).integers(0, 64, size=data.shape, dtype=np.uint8)
    data = np.where(valid, np.maximum(data, 1) | noise, 0).astype("uint8")
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(
        tmp,
        "w",
        driver="COG",
        width=side,
        height=height,
        count=3,
        dtype="uint8",
        crs=profile["crs"],
        transform=transform,
        nodata=0,
        compress="DEFLATE",
        blocksize=512,
        overview_resampling="nearest",
    ) as dst:
        dst.write(data)
    tmp.rename(path)
    return path


def big_laz(path: Path, megabytes: int = BIG_MB) -> Path:
    """A ~`megabytes` MB LAZ 1.4 (point format 6, WKT CRS in a VLR, one small EVLR at the
    end, as LAS 1.4 allows: the reader must look at the tail too)."""
    if path.exists():
        return path
    import laspy
    import numpy as np
    from laspy.vlrs.vlrlist import VLRList
    from pyproj import CRS

    points = megabytes * 1024 * 1024 * 10 // 118  # ~11.8 bytes per point compressed
    rng = np.random.default_rng(16)
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.offsets, header.scales = [500000.0, 4200000.0, 0.0], [0.01, 0.01, 0.01]
    header.add_crs(CRS.from_epsg(32610))
    las = laspy.LasData(header)
    las.x = 500000.0 + rng.random(points) * 1000
    las.y = 4200000.0 + rng.random(points) * 1000
    las.z = 100 + rng.random(points) * 40
    las.intensity = rng.integers(0, 4000, points)
    las.gps_time = np.sort(rng.random(points) * 1000)
    las.evlrs = VLRList([laspy.VLR("stacsync-bench", 1, "an EVLR at the end", b"x" * 1024)])
    tmp = path.with_suffix(".tmp.laz")
    las.write(tmp, laz_backend=laspy.LazBackend.Lazrs)
    tmp.rename(path)
    return path


def big_copc(path: Path, python: str | None, megabytes: int = BIG_MB) -> Path | None:
    """A ~`megabytes` MB COPC written by benchmarks/s3_copc.py with copclib (not a stacsync
    dependency: `python` is an interpreter that has it); None without one."""
    if path.exists():
        return path
    if not python:
        return None
    points = megabytes * 1024 * 1024 * 10 // 66  # ~6.6 bytes per point
    subprocess.run(
        [python, str(HERE / "s3_copc.py"), str(path), "--points", str(points)], check=True
    )
    return path


@dataclass(frozen=True)
class Upload:
    key: str  # relative to the prefix
    local: Path
    kind: str  # COG, GeoTIFF, LAS/LAZ, COPC, other
    group: str  # the table row it falls in


def kind_of(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith(".copc.laz"):
        return "COPC"
    if lowered.endswith((".las", ".laz")):
        return "LAS/LAZ"
    if lowered.endswith((".tif", ".tiff")):
        return "COG"
    return "other"


def header_files(workdir: Path, copc_python: str | None) -> list[Upload]:
    files = workdir / "files"
    files.mkdir(parents=True, exist_ok=True)
    _progress("preparing files (cached in the workdir)")
    out = [Upload("big/ortho-64mb.tif", big_cog(files / "ortho-64mb.tif"), "COG", "")]
    out.append(Upload("big/cloud-64mb.laz", big_laz(files / "cloud-64mb.laz"), "LAS/LAZ", ""))
    copc = big_copc(files / "cloud-64mb.copc.laz", copc_python)
    if copc is not None:
        out.append(Upload("big/cloud-64mb.copc.laz", copc, "COPC", ""))
    for name in TESTDATA_FILES:
        out.append(Upload(f"testdata/{name}", TESTDATA / name, kind_of(name), ""))
    demo = files / "ofo"
    if not (demo / ".done").exists():
        from stacsync.demo import make_demo_tree

        make_demo_tree(demo, missions=3, raster_size=1024, points=50_000)
        (demo / ".done").write_text("")
    for path in sorted(p for p in demo.rglob("*") if p.is_file() and p.name != ".done"):
        rel = path.relative_to(demo).as_posix()
        kind = kind_of(path.name)
        group = f"OFO demo {kind}" if kind != "other" else "OFO demo other (not included)"
        if kind == "COG":
            group = f"OFO demo COG {path.stem.rsplit('_', 1)[-1]}"
        out.append(Upload(f"ofo/{rel}", path, kind, group))
    return out


# -- measurement 1: header reads per file --------------------------------------------------


@dataclass
class FileReads:
    upload: Upload
    size: int
    gets: list[Hit]
    heads: int

    @property
    def got(self) -> int:
        return sum(h.body_bytes for h in self.gets)


def per_file(p: Pass, uploads: list[Upload]) -> list[FileReads]:
    by_key: dict[str, list[Hit]] = {}
    for hit in p.hits:
        key = hit.key_in(HEADERS_BUCKET)
        if key is not None and not hit.is_list:
            by_key.setdefault(key, []).append(hit)
    rows = []
    for up in uploads:
        hits = by_key.get(HEADERS_PREFIX + up.key, [])
        gets = [h for h in hits if h.method == "GET"]
        heads = sum(1 for h in hits if h.method == "HEAD")
        rows.append(FileReads(up, up.local.stat().st_size, gets, heads))
    return rows


@dataclass
class HeaderResult:
    passes: dict[str, Pass]
    files: dict[str, list[FileReads]]
    levels: dict[str, list[tuple[str, int, int]]]  # key → cog_levels()


def measure_headers(server: Server, workdir: Path, copc_python: str | None) -> HeaderResult:
    uploads = header_files(workdir, copc_python)
    server.client.create_bucket(Bucket=HEADERS_BUCKET)
    total = server.put_many(
        HEADERS_BUCKET,
        ((HEADERS_PREFIX + u.key, u.local.read_bytes) for u in uploads),
    )
    _progress(f"uploaded {len(uploads)} objects, {total / 1e6:.1f} MB")
    source = f"s3://{HEADERS_BUCKET}/{HEADERS_PREFIX}"
    passes, files = {}, {}
    for label, overviews in (("headers only", False), ("footprints and thumbnails", True)):
        run = workdir / ("build-overviews" if overviews else "build-headers")
        _clean(run)
        output, manifest = run / "catalog", run / "stacsync.db"
        config = None
        if not overviews:
            config = write_config(run / "stacsync.toml", source, server.endpoint, output, manifest)
        name = f"first build, {label}" + ("" if overviews else " (`read_overviews = false`)")
        p = rescan(server, name, source, output, manifest, config)
        passes[label] = p
        files[label] = per_file(p, uploads)
    picked = [uploads[0]]  # the big COG, and one orthomosaic and one DSM of the demo tree
    for group in ("OFO demo COG orthomosaic", "OFO demo COG dsm-mesh"):
        picked += [u for u in uploads if u.group == group][:1]
    return HeaderResult(passes, files, {u.key: cog_levels(u.local) for u in picked})


def cog_levels(path: Path) -> list[tuple[str, int, int]]:
    """Byte ranges of a COG: its header (IFDs, offset arrays, ghost area), then each level's
    tile data as (level, first byte, last byte)."""
    import rasterio

    levels = []
    with rasterio.open(path) as src:
        bw, bh = src.block_shapes[0]
        factors = src.overviews(1)
        for ovr in [None, *range(len(factors))]:
            factor = 1 if ovr is None else factors[ovr]
            width, height = -(-src.width // factor), -(-src.height // factor)
            spans = []
            for row in range(-(-height // bh)):
                for col in range(-(-width // bw)):
                    off = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1, ovr=ovr)
                    size = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1, ovr=ovr)
                    if off and size:
                        spans.append((int(off), int(off) + int(size) - 1))
            name = "full resolution" if ovr is None else f"overview 1/{factor}"
            if spans:
                levels.append(
                    (f"{name} ({width}×{height})", min(spans)[0], max(e for _, e in spans))
                )
    first = min(start for _, start, _ in levels)
    return [("header (IFDs, tile offsets)", 0, first - 1), *sorted(levels, key=lambda x: x[1])]


def _span(hit: Hit) -> tuple[int, int] | None:
    if not hit.range or not hit.range.startswith("bytes=") or not hit.body_bytes:
        return None
    start = int(hit.range[6:].split("-")[0])
    return start, start + hit.body_bytes - 1


def by_level(
    gets: list[Hit], levels: list[tuple[str, int, int]]
) -> list[tuple[str, int, int, int]]:
    """(level, its size, GETs touching it, bytes of it fetched)."""
    out = []
    for name, first, last in levels:
        touching, got = 0, 0
        for hit in gets:
            span = _span(hit)
            if span is None:
                continue
            overlap = min(last, span[1]) - max(first, span[0]) + 1
            if overlap > 0:
                touching += 1
                got += overlap
        out.append((name, last - first + 1, touching, got))
    return out


# -- measurement 2: a no-change poll --------------------------------------------------------


@dataclass
class PollResult:
    objects: int
    upload_seconds: float
    passes: list[Pass]


def measure_poll(server: Server, workdir: Path, objects: int, runs: int) -> PollResult:
    data = (TESTDATA / POLL_FILE).read_bytes()
    server.client.create_bucket(Bucket=POLL_BUCKET)
    keys = [f"{POLL_PREFIX}d{i // 1000:02d}/f{i:05d}.tif" for i in range(objects)]
    _progress(f"uploading {objects} copies of {POLL_FILE}")
    start = time.perf_counter()
    server.put_many(POLL_BUCKET, ((k, lambda: data) for k in keys))
    upload_seconds = time.perf_counter() - start
    _progress(f"  {objects / upload_seconds:.0f} PUT/s")
    time.sleep(2.5)  # past stacsync's 2-s "changed within the same tick" window
    run = workdir / "poll"
    _clean(run)
    output, manifest = run / "catalog", run / "stacsync.db"
    source = f"s3://{POLL_BUCKET}/{POLL_PREFIX}"

    def one(name: str) -> Pass:
        return rescan(server, name, source, output, manifest)

    crashes = []
    for _attempt in range(3):
        try:
            first = one("first build")
            break
        except PassFailed as exc:  # start again from nothing, so the figures are a whole build
            _progress(f"  {exc}")
            crashes.append(str(exc).split(";")[0].split(": ", 1)[1])
            _clean(run)
    else:
        raise SystemExit("the first build failed three times")
    if crashes:
        first.note = "earlier attempts: " + "; ".join(crashes) + " (then started afresh)"
    passes = [first]
    # The no-change rows are repeated (wall time is noisy here); requests are the first run's
    # and every run's are checked to be the same.
    passes.append(repeated(runs, lambda: one("no change")))
    passes.append(repeated(runs, lambda: list_floor(server, POLL_BUCKET, POLL_PREFIX)))
    passes.append(
        repeated(
            runs,
            lambda: rescan(
                server, "no change, straight to moto_server", source, output, manifest, direct=True
            ),
        )
    )
    passes.append(repeated(runs, lambda: list_floor(server, POLL_BUCKET, POLL_PREFIX, direct=True)))
    target = keys[objects // 2]
    changed = bytearray(data)
    changed[-1] ^= 0xFF  # one pixel: same size, new bytes, new ETag
    server.client.put_object(Bucket=POLL_BUCKET, Key=target, Body=bytes(changed))
    time.sleep(2.5)
    passes.append(one("modify 1 object (new bytes, new ETag)"))
    touched = keys[objects // 3]
    server.client.copy_object(
        Bucket=POLL_BUCKET,
        Key=touched,
        CopySource={"Bucket": POLL_BUCKET, "Key": touched},
        MetadataDirective="REPLACE",
        Metadata={"touched": "1"},
    )
    time.sleep(2.5)
    passes.append(one("touch 1 object (copy onto itself: same ETag, new LastModified)"))
    passes.append(one("no change after both"))
    # The same change seen at once, as a poller would: within 2 s of its LastModified.
    server.client.put_object(Bucket=POLL_BUCKET, Key=target, Body=data)
    passes.append(one("modify 1 object, pass at once (< 2 s after the PUT)"))
    passes.append(one("the pass right after that"))
    return PollResult(objects, upload_seconds, passes)


# -- reporting ------------------------------------------------------------------------------


def header_tables(result: HeaderResult) -> str:
    headers = result.files["headers only"]
    overviews = result.files["footprints and thumbnails"]
    pairs = list(zip(headers, overviews, strict=True))
    parts = [
        _per_file_table(pairs),
        _passes_table(result.passes.values()),
        _budget_table(result, headers, overviews),
        _ranges_list(pairs),
        _levels_tables(result, headers, overviews),
    ]
    return "\n\n".join(parts)


def _per_file_table(pairs: list[tuple[FileReads, FileReads]]) -> str:
    out = [
        "### Header reads per file (first build, quick form)",
        "",
        "Each row is one object; GET/HEAD are requests for that key, bytes are the bodies "
        "the server sent. Headers only: `[extract] read_overviews = false` (a config with the "
        "quick form's settings); footprints and thumbnails: the quick form as is (default).",
        "",
        "| file | kind | size | GET (headers only) | bytes (headers only) | GET (footprints) "
        "| bytes (footprints) | HEAD per pass |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for a, b in pairs:
        if not a.upload.group:
            out.append(
                f"| `{a.upload.key}` | {a.upload.kind} | {_size(a.size)} | {len(a.gets)} "
                f"| {_bytes_pct(a.got, a.size)} | {len(b.gets)} | {_bytes_pct(b.got, b.size)} "
                f"| {a.heads} / {b.heads} |"
            )
    groups: dict[str, list[tuple[FileReads, FileReads]]] = {}
    for a, b in pairs:
        if a.upload.group:
            groups.setdefault(a.upload.group, []).append((a, b))
    for group, rows in groups.items():
        size = statistics.mean(a.size for a, _ in rows)
        out.append(
            f"| {group} ({len(rows)} files, mean) | {rows[0][0].upload.kind} | {_size(size)} "
            f"| {_range(len(a.gets) for a, _ in rows)} "
            f"| {_bytes_pct(statistics.mean(a.got for a, _ in rows), size)} "
            f"| {_range(len(b.gets) for _, b in rows)} "
            f"| {_bytes_pct(statistics.mean(b.got for _, b in rows), size)} "
            f"| {_range(a.heads for a, _ in rows)} / {_range(b.heads for _, b in rows)} |"
        )
    return "\n".join(out)


def _passes_table(passes: Iterable[Pass]) -> str:
    out = ["### Requests of the whole pass", "", PASS_HEAD]
    out += [_pass_row(p) for p in passes]
    return "\n".join(out)


def _budget_table(
    result: HeaderResult, headers: list[FileReads], overviews: list[FileReads]
) -> str:
    out = [
        "### Budgets",
        "",
        "| budget | figure | file | verdict |",
        "|---|---:|---|---|",
    ]
    for kind, budget in BUDGETS.items():
        rows = [a for a in headers if a.upload.kind == kind]
        if rows:
            worst = max(rows, key=lambda r: len(r.gets))
            verdict = "met" if len(worst.gets) <= budget else "**missed**"
            out.append(
                f"| {kind} header (headers only): ≤ {budget} GET per file, worst file "
                f"| {len(worst.gets)} | `{worst.upload.key}` | {verdict} |"
            )
    for key, levels in result.levels.items():
        b = next(r for r in overviews if r.upload.key == key)
        rows = by_level(b.gets, levels)
        # Beyond the header and the smallest overview (the first level in the file), allowing
        # one read-ahead (64 KiB) of spill past the smallest overview's end.
        beyond = sum(got for _, _, _, got in rows[2:])
        verdict = "met" if beyond <= 64 * 1024 else "**missed**"
        out.append(
            f"| COG footprint and thumbnail from the smallest overview only: bytes fetched "
            f"beyond it | {_size(beyond)} (the file: {len(b.gets)} GETs) | `{key}` | {verdict} |"
        )
    return "\n".join(out)


def _ranges_list(pairs: list[tuple[FileReads, FileReads]]) -> str:
    out = [
        "### Range headers of the big files",
        "",
        "Every GET of the key, in order, with the bytes the server sent (HEADs and the "
        "listing not shown).",
        "",
    ]
    for a, b in pairs:
        if a.upload.key.startswith("big/"):
            for label, reads in (("headers only", a), ("footprints and thumbnails", b)):
                out.append(f"- `{a.upload.key}`, {label}: {_ranges(reads.gets)}")
    return "\n".join(out)


def _ranges(gets: list[Hit], shown: int = 4) -> str:
    """The Range headers of these GETs, the first `shown` of a long list and a summary."""
    text = ", ".join(f"`{h.range or 'whole'}` → {_size(h.body_bytes)}" for h in gets[:shown])
    rest = gets[shown:]
    if len(rest) == 1:
        text += f", `{rest[0].range}` → {_size(rest[0].body_bytes)}"
    elif rest:
        spans = [sp for sp in map(_span, rest) if sp is not None]
        sizes = [h.body_bytes for h in rest]
        text += (
            f", then {len(rest)} more GETs of {_size(min(sizes))}–{_size(max(sizes))} "
            f"({_size(sum(sizes))} in all) between bytes {min(sp[0] for sp in spans):,} and "
            f"{max(sp[1] for sp in spans):,} (every one in WORKDIR/logs/*.jsonl)"
        )
    return text or "none"


def _levels_tables(
    result: HeaderResult, headers: list[FileReads], overviews: list[FileReads]
) -> str:
    out = [
        "### Where the COG reads land",
        "",
        "Bytes of each part of the file that the GETs brought (a GET spanning two parts counts "
        "in both: the 64-KiB read-ahead spills a little past the smallest overview).",
    ]
    for key, levels in result.levels.items():
        a = next(r for r in headers if r.upload.key == key)
        b = next(r for r in overviews if r.upload.key == key)
        out += [
            "",
            f"`{key}` ({_size(a.size)}):",
            "",
            "| part | its size | GET (headers only) | bytes (headers only) | GET (footprints) "
            "| bytes (footprints) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        rows_a, rows_b = by_level(a.gets, levels), by_level(b.gets, levels)
        for (name, size, ga, ba), (_, _, gb, bb) in zip(rows_a, rows_b, strict=True):
            out.append(
                f"| {name} | {_size(size)} | {ga} | {_bytes_pct(ba, size)} | {gb} "
                f"| {_bytes_pct(bb, size)} |"
            )
    return "\n".join(out)


PASS_HEAD = (
    "| pass | wall s | LIST pages | HEAD | GET | other | total | bytes received "
    "| catalog files written | what it did |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
)


def poll_tables(result: PollResult) -> str:
    each = _size((TESTDATA / POLL_FILE).stat().st_size)
    rate = result.objects / result.upload_seconds
    out = [
        f"### Polling a {result.objects:,}-object bucket (quick form)",
        "",
        f"{result.objects:,} copies of `{POLL_FILE}` ({each} each) under 10 'folders'; uploaded "
        f"at {rate:.0f} PUT/s straight to moto_server. Each pass is one `stacsync rescan --json` "
        "process. Changes are made 2.5 s before the pass unless the row says otherwise.",
        "",
        PASS_HEAD,
    ]
    out += [_pass_row(p) for p in result.passes]
    return "\n".join(out)


def _pass_row(p: Pass) -> str:
    ops = Counter(h.op for h in p.hits)
    other = sum(v for k, v in ops.items() if k not in ("LIST", "HEAD", "GET"))
    s = p.summary
    wrote = len(p.written)
    what = [p.did()]
    if s.get("items_written"):
        what.append(f"items_written={s['items_written']}")
    if p.note:
        what.append(p.note)
    if 0 < wrote <= 4:
        what.append("wrote " + ", ".join(f"`{Path(w).name}`" for w in p.written))
    errors = sum(1 for h in p.hits if h.status >= 400)
    if errors:
        what.append(f"{errors} answers ≥ 400")
    wall = f"{p.seconds:.2f}"
    if len(p.times) > 1:
        wall += f" (median of {len(p.times)}, {min(p.times):.2f}–{max(p.times):.2f})"
    if not p.logged:
        return (
            f"| {p.name} | {wall} | – | – | – | – | – | – | {wrote} "
            f"| {'; '.join(what)} (not through the relay: requests not logged) |"
        )
    return (
        f"| {p.name} | {wall} | {ops['LIST']} | {ops['HEAD']} | {ops['GET']} "
        f"| {other} | {len(p.hits)} | {_size(p.body_bytes)} | {wrote} | {'; '.join(what)} |"
    )


def _range(values: Iterable[int]) -> str:
    values = list(values)
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"


def _size(n: float) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


def _bytes_pct(got: float, size: float) -> str:
    return f"{_size(got)} ({100 * got / size:.1f} %)" if size else _size(got)


def _clean(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/stacsync-s3-bench"),
        help="Generated files are kept here and reused; catalogs and manifests too.",
    )
    parser.add_argument("--objects", type=int, default=10_000, help="Objects of the poll.")
    parser.add_argument("--runs", type=int, default=3, help="Runs of each no-change row.")
    parser.add_argument(
        "--copc-python",
        help="An interpreter with copclib, to write the 64-MB COPC (benchmarks/s3_copc.py); "
        "without it (and no COPC in the workdir) only the testdata COPCs are measured.",
    )
    parser.add_argument("--skip-headers", action="store_true", help="Only the poll.")
    parser.add_argument("--skip-poll", action="store_true", help="Only the header reads.")
    parser.add_argument("--markdown", type=Path, help="Also write the tables to this file.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    global LOGS
    LOGS = args.workdir / "logs"
    LOGS.mkdir(exist_ok=True)
    os.environ.update(aws_env())  # the benchmark's own boto3 client
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    server = Server(args.workdir)
    parts = []
    try:
        if not args.skip_headers:
            parts.append(header_tables(measure_headers(server, args.workdir, args.copc_python)))
        if not args.skip_poll:
            parts.append(poll_tables(measure_poll(server, args.workdir, args.objects, args.runs)))
    except PassFailed as exc:
        raise SystemExit(str(exc)) from None
    finally:
        server.close()
    minutes = (time.perf_counter() - started) / 60
    head = (
        f"Machine: {machine()}. moto_server on loopback behind a Python relay that logs every "
        f"request, so wall times are not a real network's; request and byte counts are exact. "
        f"Benchmark took {minutes:.1f} min; load average (1 min) {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (2 cores: above ~1, other work shared them)."
    )
    text = "\n\n".join([head, *parts])
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
