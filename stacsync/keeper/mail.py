"""Email a person ([notify] mail) when a collection is first published or new errors appear.

Sending never fails a pass: an SMTP or network problem is a logged warning and a False.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stacsync.config.settings import MailSettings, is_loopback
from stacsync.core.names import display

if TYPE_CHECKING:
    from email.message import EmailMessage

# email, socket and ipaddress load inside the functions that use them: config reads
# MailSettings on every start, and mail is configured rarely and sent more rarely still.

log = logging.getLogger(__name__)

MESSAGE_CHARS = 500  # one error message in a mail; a traceback-length one is cut


@dataclass(frozen=True)
class PublishedCollection:
    """A collection to announce."""

    id: str
    title: str | None
    url: str  # where a person opens it: its public URL, or its path on the output


class MailNotifier:
    """Composes plain-text notices and sends them; never raises into the caller.

    (Not `Notifier`: that is the systemd notifier in `stacsync.daemon.notify`.)
    """

    def __init__(self, settings: MailSettings, environ: Mapping[str, str] | None = None):
        self.settings = settings
        # The password is looked up at each send, never stored here, so no repr or
        # traceback of this object can show it.
        self._environ = os.environ if environ is None else environ

    # ------------------------------------------------------------------ what to say

    def collection_published(self, collection_id: str, title: str | None, url: str) -> bool:
        """Announce one newly published collection; True if the server accepted the mail."""
        return self.collections_published([PublishedCollection(collection_id, title, url)])

    def collections_published(self, published: Sequence[PublishedCollection]) -> bool:
        """Announce newly published collections in one mail (a first build makes many)."""
        if not published:
            return False
        if len(published) == 1:
            c = published[0]
            subject = f"New collection published: {c.title or c.id}"
            lines = [
                "A new collection was published in the STAC catalog.",
                "",
                f"  Collection: {_name(c)}",
                f"  Open it at: {c.url}",
            ]
        else:
            subject = f"{len(published)} new collections published"
            lines = [f"{len(published)} new collections were published in the STAC catalog:", ""]
            for c in published:
                lines += [f"  {_name(c)}", f"      {c.url}"]
        return self.send(subject, "\n".join([*lines, "", _footer()]))

    def new_errors(
        self, errors: Sequence[tuple[str, str]], total_errors: int, catalog_url: str | None
    ) -> bool:
        """Report files that went into error: (path, message) pairs, listed up to `max_listed`."""
        if not errors:
            return False
        count = len(errors)
        files = "file" if count == 1 else "files"
        subject = f"{count} new {files} in error"
        lines = [
            f"stacsync could not describe {count} more {files}; "
            f"{total_errors} in all are in error now.",
            "",
        ]
        shown = errors[: self.settings.max_listed]
        for path, message in shown:
            lines += [f"  {path}", f"      {_one_line(message)}"]
        if count > len(shown):
            lines.append(f"  and {count - len(shown)} more.")
        lines.append("")
        if catalog_url:
            lines.append(f"Catalog: {catalog_url}")
        lines += ["List every error with: stacsync manifest errors", "", _footer()]
        return self.send(subject, "\n".join(lines))

    # ------------------------------------------------------------------ how to send

    def compose(self, subject: str, body: str) -> EmailMessage:
        """The message, with From, To, Subject, Date and Message-ID set."""
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        s = self.settings
        msg = EmailMessage()
        msg["From"] = s.from_addr
        msg["To"] = ", ".join(s.to_addrs)
        # Headers may not hold line breaks; ids and titles come from folder names and config.
        msg["Subject"] = " ".join(f"{s.subject_prefix} {subject}".split())
        msg["Date"] = formatdate(localtime=True)
        # make_msgid() alone asks DNS for this host's FQDN, which can hang a pass.
        msg["Message-ID"] = make_msgid(domain=_domain(s.from_addr))
        msg.set_content(body)
        return msg

    def send(self, subject: str, body: str) -> bool:
        """Compose and send; False (and one warning) on any SMTP, TLS or network problem."""
        # Loaded only to send: config reads MailSettings on every start, mail is rare.
        import smtplib
        import ssl

        s = self.settings
        where = f"{s.host}:{s.port}"
        password = None
        if s.username:
            password = self._environ.get(s.auth_env or "")
            if not password:
                log.warning(
                    "mail %r not sent: environment variable %s (SMTP password) is not set",
                    subject,
                    s.auth_env,
                )
                return False
            if not s.starttls and not is_loopback(s.host):
                log.warning(
                    "mail %r not sent: no SMTP login to %s without STARTTLS", subject, where
                )
                return False
        try:
            msg = self.compose(subject, body)
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.username and password:
                    smtp.login(s.username, password)
                refused = smtp.send_message(msg, _bare(s.from_addr), [_bare(a) for a in s.to_addrs])
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            # OSError covers refused connections, timeouts and ssl.SSLError; ValueError a
            # header the email package will not write.
            reason = _scrub(f"{type(exc).__name__}: {exc}", password)
            log.warning("mail %r to %s via %s not sent: %s", subject, _recipients(s), where, reason)
            return False
        if refused:
            log.warning("mail %r: server refused %s", subject, ", ".join(sorted(refused)))
        log.info("mail %r sent to %s via %s", subject, _recipients(s), where)
        return True


# ---------------------------------------------------------------------- when to send


def collections_to_announce(published_ids: Iterable[str], announced_state: str | None) -> list[str]:
    """Published collection ids not announced yet, sorted.

    `announced_state` is the manifest's `state.announced_collections` (None at first:
    then every published collection is new, and one mail lists them all).
    """
    announced = set(_load_ids(announced_state))
    return sorted(set(published_ids) - announced)


def announced_state(published_ids: Iterable[str]) -> str:
    """The state value to store once the announcement mail was sent.

    Store the ids published now: one that is removed and later published again is announced
    again.
    """
    return json.dumps(sorted(set(published_ids)))


def new_error_list(
    before_paths: Iterable[str],
    after_rows: Iterable[Mapping[str, Any]],
    *,
    include_transient: bool = False,
) -> list[tuple[str, str]]:
    """(path as shown, message) of files in error after a pass that were not before it, sorted.

    `after_rows` are `Manifest.errors()` rows. Transient errors (a flaky FUSE mount) are
    retried by the next pass and would mail on every flap, so they are left out by default.
    """
    before = set(before_paths)
    return sorted(
        (display(row["path"]), row["error"] or "unknown error")
        for row in after_rows
        if row["path"] not in before and (include_transient or not row.get("error_transient"))
    )


# ---------------------------------------------------------------------- small helpers


def _recipients(settings: MailSettings) -> str:
    return ", ".join(settings.to_addrs)


def _bare(addr: str) -> str:
    """ "Data Team <team@x.org>" -> "team@x.org": the envelope holds addresses only."""
    from email.utils import parseaddr

    return parseaddr(addr)[1] or addr


def _domain(addr: str) -> str:
    from email.utils import parseaddr

    domain = parseaddr(addr)[1].rpartition("@")[2]
    return domain or "stacsync.invalid"


def _name(c: PublishedCollection) -> str:
    return f"{c.title} ({c.id})" if c.title and c.title != c.id else c.id


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _footer() -> str:
    import socket

    return f"-- \nSent by stacsync on {socket.gethostname()}."


def _scrub(text: str, password: str | None) -> str:
    """`text` with the password masked: a server may echo what it was given into an error."""
    return text.replace(password, "***") if password else text


def _load_ids(state: str | None) -> list[str]:
    if not state:
        return []
    try:
        ids = json.loads(state)
    except ValueError:
        return []  # a broken state value: announce again rather than never
    return [i for i in ids if isinstance(i, str)] if isinstance(ids, list) else []
