"""Alert emails as drill Messages, read back from a real mailbox over IMAP (read-only)."""

from __future__ import annotations

import email
import imaplib
import mailbox
import ssl
import time
from email import policy
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from obsctl.configfile import StrictModel
from obsctl.drills.target import DrillError, Message


def email_message(msg: EmailMessage | mailbox.MaildirMessage, received_at: float) -> Message:
    """A received email as a Message: decoded subject, every text part concatenated."""
    subject = str(make_header(decode_header(msg.get("Subject", ""))))
    parts = [msg] if not msg.is_multipart() else list(msg.walk())
    text = ""
    for part in parts:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            text += payload.decode(part.get_content_charset() or "utf-8", "replace")
    return Message(received_at, "email", subject, text)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ImapMailbox(StrictModel):
    """An IMAP account whose folder receives the alert emails."""

    host: str = Field(min_length=1)
    port: int = Field(default=993, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "tls"
    username: str = Field(min_length=1)
    password: SecretStr
    folder: str = "INBOX"
    # A private CA's certificate (PEM) to trust for this server; the system's CAs otherwise.
    ca_file: Path | None = None
    timeout: float = Field(default=10.0, gt=0)

    def messages_since(self, since: float) -> list[Message]:
        """Emails whose arrival time (IMAP INTERNALDATE) is at or after a unix time."""
        try:
            with self._connect() as imap:
                return _fetch_since(imap, self.folder, since)
        except (imaplib.IMAP4.error, OSError) as exc:
            where = f"imap {self.username}@{self.host}:{self.port}/{self.folder}"
            raise DrillError(f"{where}: {type(exc).__name__}: {exc}") from None

    def _connect(self) -> imaplib.IMAP4:
        context = ssl.create_default_context(cafile=self.ca_file)
        imap: imaplib.IMAP4
        if self.security == "tls":
            imap = imaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=context, timeout=self.timeout
            )
        else:
            imap = imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
            if self.security == "starttls":
                imap.starttls(context)
        try:
            imap.login(self.username, self.password.get_secret_value())
        except BaseException:
            imap.shutdown()
            raise
        return imap


def _fetch_since(imap: imaplib.IMAP4, folder: str, since: float) -> list[Message]:
    status, _ = imap.select(_quoted(folder), readonly=True)  # readonly: nothing marked as read
    if status != "OK":
        raise DrillError(f"no folder {folder!r}")
    # SEARCH SINCE has day granularity in the server's time zone: ask from the day before,
    # then keep what arrived at or after `since` by each message's exact INTERNALDATE.
    day = time.gmtime(since - 86_400)
    criterion = f"{day.tm_mday}-{_MONTHS[day.tm_mon - 1]}-{day.tm_year}"
    _, data = imap.search(None, "SINCE", criterion)
    ids = data[0].split() if data and data[0] else []
    if not ids:
        return []
    _, dates = imap.fetch(",".join(i.decode() for i in ids), "(INTERNALDATE)")
    recent = []
    for line in dates:
        if not isinstance(line, bytes):
            continue
        parsed = imaplib.Internaldate2tuple(line)
        if parsed is not None and time.mktime(parsed) >= since:
            recent.append((line.split(b" ", 1)[0].decode(), time.mktime(parsed)))
    found = []
    for number, received in recent:
        _, parts = imap.fetch(number, "(BODY.PEEK[])")
        for part in parts:
            if isinstance(part, tuple):
                msg = email.message_from_bytes(part[1], policy=policy.compat32)
                found.append(email_message(msg, received))
    return found


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
