"""Tests for [notify] mail: composed messages, sent to a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import logging
import smtplib
import socket
from collections.abc import Iterator
from contextlib import closing
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd not installed")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

from stacsync.config.settings import MailSettings  # noqa: E402
from stacsync.keeper.mail import (  # noqa: E402 (after the skip: the module is fine without aiosmtpd)
    MailNotifier,
    PublishedCollection,
    announced_state,
    collections_to_announce,
    new_error_list,
)
from stacsync.manifest.state import ANNOUNCED_STATE_KEY  # noqa: E402

# The test server takes AUTH over plain TCP on 127.0.0.1 on purpose, and says so each time.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PASSWORD = "s3cret-Pa55word"
USER = "stacsync-bot"
ENV = "STACSYNC_TEST_SMTP_AUTH"
PUBLIC = "https://data.cyverse.org/dav-anon/iplant/home/u/stac"


class Inbox:
    """aiosmtpd handler that keeps every message it accepts; can refuse chosen recipients."""

    def __init__(self, refuse: tuple[str, ...] = ()):
        self.refuse = refuse
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def only(self) -> tuple[Any, EmailMessage]:
        assert len(self.envelopes) == 1, self.envelopes
        envelope = self.envelopes[0]
        return envelope, message_from_bytes(envelope.content, policy=policy.default)


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(inbox: Inbox, **server_kwargs: Any) -> Iterator[int]:
    port = free_port()
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=port, **server_kwargs
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def server(inbox: Inbox) -> Iterator[int]:
    yield from start(inbox)


def accept_only_our_login(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return aiosmtpd_smtp.AuthResult(success=ok, handled=False)


@pytest.fixture
def auth_server(inbox: Inbox) -> Iterator[int]:
    yield from start(
        inbox, authenticator=accept_only_our_login, auth_require_tls=False, auth_required=True
    )


def settings(port: int, **changes: Any) -> MailSettings:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "from_addr": "stacsync@ofo.example.org",
        "to_addrs": ("keeper@example.org", "Data Team <team@example.org>"),
        "timeout": 5.0,
        "subject_prefix": "[stacsync ofo]",
    }
    values.update(changes)
    return MailSettings(**values)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused at once."""
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


# --------------------------------------------------------------------------- what arrives


def test_collection_published_arrives(server: int, inbox: Inbox) -> None:
    notifier = MailNotifier(settings(server))
    url = f"{PUBLIC}/mission-000123/collection.json"
    assert notifier.collection_published("mission-000123", "Mission 123", url) is True

    envelope, msg = inbox.only()
    assert envelope.mail_from == "stacsync@ofo.example.org"
    assert envelope.rcpt_tos == ["keeper@example.org", "team@example.org"]
    assert msg["From"] == "stacsync@ofo.example.org"
    assert msg["To"] == "keeper@example.org, Data Team <team@example.org>"
    assert msg["Subject"] == "[stacsync ofo] New collection published: Mission 123"
    assert msg["Date"]
    assert msg["Message-ID"].endswith("@ofo.example.org>")
    body = msg.get_content()
    assert "Mission 123 (mission-000123)" in body
    assert url in body


def test_several_collections_are_one_mail(server: int, inbox: Inbox) -> None:
    published = [
        PublishedCollection("a", "Plot A", f"{PUBLIC}/a/collection.json"),
        PublishedCollection("b", None, f"{PUBLIC}/b/collection.json"),
    ]
    assert MailNotifier(settings(server)).collections_published(published)
    _, msg = inbox.only()
    assert msg["Subject"] == "[stacsync ofo] 2 new collections published"
    body = msg.get_content()
    assert "Plot A (a)" in body
    assert f"{PUBLIC}/b/collection.json" in body


def test_new_errors_list_at_most_max_listed(server: int, inbox: Inbox) -> None:
    errors = [(f"missions/{i:06d}/points.laz", f"LAS header claims {i} VLRs") for i in range(25)]
    notifier = MailNotifier(settings(server, max_listed=20))
    assert notifier.new_errors(errors, total_errors=31, catalog_url=f"{PUBLIC}/catalog.json")

    _, msg = inbox.only()
    assert msg["Subject"] == "[stacsync ofo] 25 new files in error"
    body = msg.get_content()
    assert "31 in all" in body
    assert "missions/000019/points.laz" in body
    assert "LAS header claims 19 VLRs" in body
    assert "missions/000020/points.laz" not in body
    assert "and 5 more." in body
    assert f"Catalog: {PUBLIC}/catalog.json" in body
    assert "stacsync manifest errors" in body


def test_one_error_reads_naturally(server: int, inbox: Inbox) -> None:
    long = "Remote I/O error\n" + "x" * 2000
    assert MailNotifier(settings(server)).new_errors([("a.tif", long)], 1, None)
    _, msg = inbox.only()
    assert msg["Subject"] == "[stacsync ofo] 1 new file in error"
    body = msg.get_content()
    assert "more." not in body
    assert "Remote I/O error xxx" in body  # one line per message
    assert max(len(line) for line in body.splitlines()) < 520  # long messages are cut
    assert "Catalog:" not in body


def test_nothing_to_say_sends_nothing(server: int, inbox: Inbox) -> None:
    notifier = MailNotifier(settings(server))
    assert notifier.new_errors([], 4, None) is False
    assert notifier.collections_published([]) is False
    assert inbox.envelopes == []


def test_line_breaks_in_a_title_do_not_reach_the_headers(server: int, inbox: Inbox) -> None:
    title = "Plot A\r\nBcc: everyone@example.org"
    assert MailNotifier(settings(server)).collection_published("a", title, "/out/a")
    envelope, msg = inbox.only()
    assert msg["Bcc"] is None
    assert "everyone@example.org" not in envelope.rcpt_tos
    # Python may fold this long header right after "Subject:"; a reader unfolds it.
    subject = " ".join(msg["Subject"].split())
    assert subject == "[stacsync ofo] New collection published: Plot A Bcc: everyone@example.org"


def test_non_ascii_title_arrives_intact(server: int, inbox: Inbox) -> None:
    assert MailNotifier(settings(server)).collection_published("f", "Forêt de Chênes", "/out/f")
    _, msg = inbox.only()
    assert msg["Subject"].endswith("Forêt de Chênes")
    assert "Forêt de Chênes (f)" in msg.get_content()


# --------------------------------------------------------------------------- failures are warnings


def test_refused_connection_is_a_warning_not_an_exception(refused_port: int, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="stacsync")
    assert MailNotifier(settings(refused_port)).collection_published("a", None, "/x") is False
    [record] = [r for r in caplog.records if r.name == "stacsync.keeper.mail"]
    assert record.levelno == logging.WARNING
    assert "not sent" in record.getMessage()
    assert f"127.0.0.1:{refused_port}" in record.getMessage()


def test_a_server_that_never_greets_times_out(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="stacsync")
    with closing(socket.socket()) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepted by the kernel, never answered
        port = silent.getsockname()[1]
        notifier = MailNotifier(settings(port, timeout=0.3))
        assert notifier.new_errors([("a.tif", "bad")], 1, None) is False
    assert "timed out" in caplog.text


def test_starttls_against_a_server_without_it_fails_softly(server: int, inbox: Inbox, caplog):
    caplog.set_level(logging.WARNING, logger="stacsync")
    assert (
        MailNotifier(settings(server, starttls=True)).collection_published("a", None, "/x") is False
    )
    assert "STARTTLS" in caplog.text
    assert inbox.envelopes == []


def test_one_refused_recipient_still_delivers_to_the_others(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="stacsync")
    inbox = Inbox(refuse=("team@example.org",))
    for port in start(inbox):
        assert MailNotifier(settings(port)).collection_published("a", None, "/x") is True
    envelope, _ = inbox.only()
    assert envelope.rcpt_tos == ["keeper@example.org"]
    assert "refused team@example.org" in caplog.text


# --------------------------------------------------------------------------- credentials


def test_login_with_the_password_from_the_environment(auth_server: int, inbox: Inbox, caplog):
    caplog.set_level(logging.DEBUG)
    config = settings(auth_server, username=USER, auth_env=ENV)
    notifier = MailNotifier(config, environ={ENV: PASSWORD})
    assert notifier.collection_published("a", "A", "/x") is True
    inbox.only()
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(config) + repr(notifier)


def test_wrong_password_is_a_warning_without_the_password(auth_server: int, inbox, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Pa55word"
    notifier = MailNotifier(
        settings(auth_server, username=USER, auth_env=ENV), environ={ENV: wrong}
    )
    assert notifier.collection_published("a", "A", "/x") is False
    assert "SMTPAuthenticationError" in caplog.text
    assert wrong not in caplog.text
    assert inbox.envelopes == []


def test_without_login_the_auth_server_refuses_softly(auth_server: int, inbox, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="stacsync")
    assert MailNotifier(settings(auth_server)).collection_published("a", None, "/x") is False
    assert "not sent" in caplog.text
    assert inbox.envelopes == []


def test_missing_password_variable_names_it_and_sends_nothing(server, inbox, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="stacsync")
    notifier = MailNotifier(settings(server, username=USER, auth_env=ENV), environ={})
    assert notifier.collection_published("a", None, "/x") is False
    assert ENV in caplog.text
    assert inbox.envelopes == []


def test_no_password_in_clear_to_a_remote_server(monkeypatch, caplog) -> None:
    def no_connection(*args, **kwargs):
        raise AssertionError("must not connect")

    monkeypatch.setattr(smtplib, "SMTP", no_connection)
    caplog.set_level(logging.WARNING, logger="stacsync")
    remote = settings(25, host="192.0.2.1", username=USER, auth_env=ENV)
    notifier = MailNotifier(remote, environ={ENV: PASSWORD})
    assert notifier.collection_published("a", None, "/x") is False
    assert "without STARTTLS" in caplog.text
    assert PASSWORD not in caplog.text


# --------------------------------------------------------------------------- settings


def test_good_settings_have_no_problems() -> None:
    assert settings(25).problems() == []
    assert (
        settings(
            587, host="smtp.example.org", starttls=True, username=USER, auth_env=ENV
        ).problems()
        == []
    )
    assert settings(25, host="localhost", username=USER, auth_env=ENV).problems() == []


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"host": ""}, "host:"),
        ({"port": 0}, "port:"),
        ({"port": 70000}, "port:"),
        ({"to_addrs": ()}, "to:"),
        ({"to_addrs": ("nobody",)}, "to:"),
        ({"from_addr": "stacsync"}, "from:"),
        ({"username": USER}, "username, auth_env:"),
        ({"auth_env": ENV}, "username, auth_env:"),
        ({"host": "smtp.example.org", "username": USER, "auth_env": ENV}, "starttls:"),
        ({"timeout": 0}, "timeout:"),
        ({"max_listed": 0}, "max_listed:"),
    ],
)
def test_setting_problems_name_the_key(changes: dict[str, Any], key: str) -> None:
    problems = settings(**{"port": 25, **changes}).problems()
    assert len(problems) == 1, problems
    assert problems[0].startswith(key)


# --------------------------------------------------------------------------- when to send


def test_collections_to_announce_remembers_what_was_sent() -> None:
    assert ANNOUNCED_STATE_KEY == "mail.announced_collections"
    assert collections_to_announce(["b", "a"], None) == ["a", "b"]
    state = announced_state(["a", "b"])
    assert collections_to_announce(["a", "b"], state) == []
    assert collections_to_announce(["a", "b", "c"], state) == ["c"]
    # removed, then published again: announced again
    assert collections_to_announce(["a", "b"], announced_state(["b"])) == ["a"]
    assert collections_to_announce(["a"], "not json") == ["a"]
    assert collections_to_announce(["a"], '{"a": 1}') == ["a"]


def test_new_error_list_keeps_only_fresh_lasting_errors() -> None:
    rows = [
        {"path": "old.tif", "error": "bad", "error_since": "t", "error_transient": 0},
        {"path": "new.laz", "error": "truncated", "error_since": "t", "error_transient": 0},
        {"path": "flaky.tif", "error": "errno 121", "error_since": "t", "error_transient": 1},
        {"path": "blank.tif", "error": None, "error_since": "t", "error_transient": 0},
    ]
    assert new_error_list(["old.tif"], rows) == [
        ("blank.tif", "unknown error"),
        ("new.laz", "truncated"),
    ]
    assert ("flaky.tif", "errno 121") in new_error_list([], rows, include_transient=True)
