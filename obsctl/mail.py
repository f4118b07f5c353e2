"""Sending one email over SMTP (stdlib smtplib), for the processes that mail on their own."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from pydantic import Field, SecretStr, field_validator

from obsctl.configfile import StrictModel, host_port

EMAIL_ADDRESS = r"^[^@\s]+@[^@\s]+$"


class SmtpConfig(StrictModel):
    """The SMTP server a process mails through, and who the mail is from."""

    smarthost: str
    sender: str = Field(pattern=EMAIL_ADDRESS)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False

    _smarthost_is_host_port = field_validator("smarthost")(host_port)


def deliver(config: SmtpConfig, message: EmailMessage, timeout: float) -> None:
    """Send `message` (blocking: run it in a thread); raises OSError or SMTPException."""
    host, _, port = config.smarthost.rpartition(":")
    with smtplib.SMTP(host.strip("[]"), int(port), timeout=timeout) as smtp:
        if config.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.username and config.password:
            smtp.login(config.username, config.password.get_secret_value())
        smtp.send_message(message)
