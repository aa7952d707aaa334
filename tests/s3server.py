"""Tests' S3: a real moto_server subprocess, and a small proxy that counts and fails requests.

The proxy sits between a client (boto3 or GDAL) and moto_server, so counts are the server's view.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from processes import wait_for

_BANNER = re.compile(r"Running on (http://127\.0\.0\.1:\d+)")
# Headers that belong to one hop, not to the request or answer being relayed.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "expect"}
_CODES = {403: "AccessDenied", 500: "InternalError", 501: "NotImplemented", 503: "SlowDown"}


def moto_server_command() -> Path | None:
    """The moto_server of this venv (or on PATH), or None when moto[server] is not installed."""
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return beside
    found = shutil.which("moto_server")
    return Path(found) if found else None


class MotoServer:
    """moto_server on 127.0.0.1 and a port the OS picks; its log goes to `log_path`."""

    def __init__(self, command: Path, log_path: Path):
        self.log_path = log_path
        self._log = log_path.open("wb")
        # Port 0: the server binds a free port itself and names it in its banner, so no other
        # process can take the port between our choosing it and the server binding it.
        self.process = subprocess.Popen(
            [str(command), "-H", "127.0.0.1", "-p", "0"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = str(wait_for(self._banner, timeout=60, what="moto_server's banner"))
        wait_for(self._answers, timeout=30, what=f"moto_server answering at {self.url}")

    def _banner(self) -> str | None:
        if self.process.poll() is not None:
            text = self.log_path.read_text(errors="replace")
            raise RuntimeError(f"moto_server exited with {self.process.returncode}: {text}")
        match = _BANNER.search(self.log_path.read_text(errors="replace"))
        return match.group(1) if match else None

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # an HTTP answer of any kind: the server is up
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


def dummy_credentials(monkeypatch) -> None:
    """Credentials moto accepts, and nothing of the developer's own AWS setup."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def store_for(endpoint: str, bucket: str, **kwargs):
    """An S3Store on `endpoint` with fast retries (tests must not wait seconds)."""
    # Imported here: conftest imports this module, and most tests need no boto3.
    from stacsync.stores.s3 import S3Options, S3Store

    options = S3Options(
        endpoint_url=endpoint, region="us-east-1", anonymous=kwargs.pop("anonymous", False)
    )
    kwargs.setdefault("retry_wait", 0.001)
    kwargs.setdefault("max_wait", 0.01)
    return S3Store(options, bucket, **kwargs)


def new_bucket(endpoint: str) -> str:
    """A fresh, empty bucket on the server (the server lives for the whole session)."""
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    store_for(endpoint, bucket).client.create_bucket(Bucket=bucket)
    return bucket


@dataclass(frozen=True)
class Seen:
    """One request as it reached the proxy."""

    method: str
    path: str  # /bucket/key, unquoted as sent
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names

    @property
    def is_list(self) -> bool:
        return self.method == "GET" and self.query.get("list-type") == ["2"]

    def is_get_of(self, bucket: str, key: str) -> bool:
        return self.method == "GET" and self.path == f"/{bucket}/{key}" and not self.query


Rule = Callable[[Seen], int | None]  # the status to answer instead of relaying, or None


class FaultProxy:
    """An HTTP relay to `upstream` that records every request; `rule` may answer one with an
    S3 error instead, and `rewrite` may change an answer's body."""

    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.seen: list[Seen] = []
        self.rule: Rule = lambda seen: None
        self.rewrite: Callable[[Seen, bytes], bytes] | None = None
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Relay)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def requests(self, test: Callable[[Seen], bool]) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if test(s)]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def fail_first(times: int, status: int, test: Callable[[Seen], bool]) -> Rule:
    """A rule failing the first `times` requests `test` picks with `status`."""
    left = [times]

    def rule(seen: Seen) -> int | None:
        if left[0] > 0 and test(seen):
            left[0] -= 1
            return status
        return None

    return rule


class _Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._relay()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def log_message(self, format: str, *args) -> None:  # quiet: the tests count instead
        pass

    def _relay(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        seen = Seen(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {k.lower(): v for k, v in self.headers.items()},
        )
        with proxy.lock:
            proxy.seen.append(seen)
            status = proxy.rule(seen)
        if status is not None:
            code = _CODES.get(status, "InternalError")
            error = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>injected by the test proxy</Message></Error>"
            ).encode()
            self._answer(status, [("Content-Type", "application/xml")], error)
            return
        upstream = http.client.HTTPConnection(
            proxy.upstream.hostname, proxy.upstream.port, timeout=60
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            answer_headers = answer.getheaders()
        finally:
            upstream.close()
        if proxy.rewrite is not None:
            data = proxy.rewrite(seen, data)
        self._answer(answer.status, answer_headers, data)

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        declared = None
        for name, value in headers:
            if name.lower() == "content-length":
                declared = value
            elif name.lower() not in _HOP and name.lower() not in ("server", "date"):
                self.send_header(name, value)
        if self.command == "HEAD":
            # A HEAD answer declares the object's length and carries no body.
            self.send_header("Content-Length", declared if status < 300 and declared else "0")
        elif status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(data)
