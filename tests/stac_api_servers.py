"""Tests' STAC API: a real PostgreSQL with PostGIS and pgstac, and stac-fastapi-pgstac on it.

Started once per session (tests/conftest.py); each pgstac test gets its own database, copied
from a migrated template in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

from helpers import age
from processes import wait_for

from stacsync.publish.stac_api import api_item_doc, comparable

PG_USER = "stacsync"
PG_PASSWORD = "stacsync-test-password"  # goes in PGPASSWORD, never in a DSN
OS_USER = "stacsync-pgtest"  # postgres refuses to run as root
POSTGIS_PACKAGE = "postgresql-{major}-postgis-3"
TEMPLATE_DB = "pgstac_template"


class Unavailable(Exception):
    """PostgreSQL, PostGIS or pgstac cannot be had on this machine: the reason, for a skip."""


def pg_bin() -> tuple[Path, str]:
    """The folder of initdb/pg_ctl of the newest installed PostgreSQL, and its major version."""
    root = Path("/usr/lib/postgresql")
    found = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise Unavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
    return found[-1], found[-1].parent.name


def ensure_postgis(major: str) -> None:
    """Install the PostGIS package when it is missing and this machine allows it (root, apt)."""
    control = Path(f"/usr/share/postgresql/{major}/extension/postgis.control")
    if control.exists():
        return
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        raise Unavailable(f"PostGIS for PostgreSQL {major} is missing and cannot be installed here")
    package = POSTGIS_PACKAGE.format(major=major)
    command = [apt, "install", "-y", "-q", "--no-install-recommends", package]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        # The package lists may be missing or stale: fetch them once and try again.
        subprocess.run([apt, "update", "-q"], capture_output=True, env=env, check=False)
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not control.exists():
        raise Unavailable(f"cannot install {package}: {done.stderr.strip()[-500:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> list[str]:
    """The prefix that runs a PostgreSQL program as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return []
    exists = subprocess.run(["id", "-u", OS_USER], capture_output=True, check=False)
    if exists.returncode != 0:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
            capture_output=True,
            check=False,
        )
    return ["runuser", "-u", OS_USER, "--"]


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port, with password login."""

    def __init__(self, workdir: Path):
        self.bin, major = pg_bin()
        ensure_postgis(major)
        self.prefix = _as_user()
        # A short path of our own: the socket path must stay under ~100 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="stacsync-pg-"))
        self.data = self.root / "data"
        self.log = workdir / "postgres.log"
        self.port = free_port()
        pwfile = self.root / "pw"
        pwfile.write_text(PG_PASSWORD + "\n")
        if self.prefix:
            shutil.chown(self.root, OS_USER)
            shutil.chown(pwfile, OS_USER)
        self._run(
            self.bin / "initdb",
            "-D", str(self.data), "-U", PG_USER, "--pwfile", str(pwfile),
            "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        self.start()

    def _run(self, *args: object) -> None:
        done = subprocess.run(
            [*self.prefix, *map(str, args)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise Unavailable(f"{Path(str(args[0])).name} failed: {done.stderr.strip()[-800:]}")

    def start(self) -> None:
        # fsync off: a test cluster need not survive a power cut, and it makes writes cheap.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Unavailable):
            self.stop()
        server_log = self.root / "server.log"
        if server_log.exists():
            shutil.copyfile(server_log, self.log)
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def env(self, database: str) -> dict[str, str]:
        """libpq's environment for `database` (the password only ever travels here)."""
        return {
            "PGUSER": PG_USER,
            "PGPASSWORD": PG_PASSWORD,
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGDATABASE": database,
        }

    def sql(self, database: str, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(database), password=PG_PASSWORD, autocommit=True) as c:
            c.execute(statement)

    def make_template(self) -> None:
        """A database with pgstac migrated in, that new databases are copied from."""
        self.sql("postgres", f"CREATE DATABASE {TEMPLATE_DB}")
        self.sql(TEMPLATE_DB, "CREATE EXTENSION IF NOT EXISTS postgis")
        migrate = Path(sys.executable).with_name("pypgstac")
        env = {**os.environ, **self.env(TEMPLATE_DB)}
        done = subprocess.run(
            [str(migrate), "migrate", "--dsn", self.dsn(TEMPLATE_DB)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            raise Unavailable(f"pypgstac migrate failed: {done.stderr.strip()[-800:]}")

    def new_database(self, name: str | None = None) -> str:
        """A fresh pgstac database copied from the template; its name."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.sql("postgres", f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        return name


class StacFastApi:
    """stac-fastapi-pgstac under uvicorn on `database`, transactions switched on."""

    def __init__(self, pg: Postgres, database: str, log_path: Path, **extra_env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **pg.env(database), "ENABLE_TRANSACTIONS_EXTENSIONS": "TRUE"}
        env.update(extra_env)
        self.log_path = log_path
        self._log = log_path.open("wb")
        uvicorn = Path(sys.executable).with_name("uvicorn")
        self.process = subprocess.Popen(
            [
                str(uvicorn), "stac_fastapi.pgstac.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        wait_for(self._answers, timeout=60, what=f"stac-fastapi-pgstac at {self.url}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            text = self.log_path.read_text(errors="replace")
            raise Unavailable(f"stac-fastapi-pgstac exited with {self.process.returncode}: {text}")
        try:
            with urllib.request.urlopen(f"{self.url}/_mgmt/ping", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def installed() -> str | None:
    """None when the Python side is installed; else why not."""
    for module in ("pypgstac", "psycopg", "stac_fastapi.pgstac", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    return None


# -- what the tests ask of an API ------------------------------------------------------


def get(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def search_ids(api_url: str, cid: str, bbox: list[float] | None = None) -> set[str]:
    body: dict = {"collections": [cid], "limit": 1000}
    if bbox is not None:
        body["bbox"] = bbox
    return {f["id"] for f in get(f"{api_url}/search", body)["features"]}


def api_items(api_url: str, cid: str) -> dict[str, dict]:
    found = get(f"{api_url}/collections/{cid}/items?limit=1000")["features"]
    return {f["id"]: f for f in found}


def static_items(output: Path, cid: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (output / cid).glob("*/*.json")}


def assert_converged(api_url: str, output: Path, cid: str) -> None:
    """API items == static catalog items: ids and content, not the API's own links."""
    static = static_items(output, cid)
    held = api_items(api_url, cid)
    assert set(held) == set(static)
    for iid, doc in static.items():
        assert comparable(held[iid]) == comparable(api_item_doc(json.dumps(doc), None)), iid


def write_setup(tmp_path: Path, api_toml: str, files: list[str], testdata: Path) -> tuple:
    """A source with `files`, a config with a collection of its own and `[stac_api]`."""
    cid = f"t-{uuid.uuid4().hex[:10]}"
    src = tmp_path / "src"
    src.mkdir()
    for name in files:
        shutil.copyfile(testdata / name, src / name)
    age(src)
    config = tmp_path / "stacsync.toml"
    config.write_text(
        f"""
[source]
path = "src"
[output]
path = "catalog"
[manifest]
path = "stacsync.db"
[[collection]]
id = "{cid}"
match = '^(?P<item>.+)$'
[stac_api]
{api_toml}
""",
        encoding="utf-8",
    )
    return config, cid, tmp_path / "catalog"
