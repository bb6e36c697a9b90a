"""Outgoing mail over SMTP (the standard library's smtplib): the one mechanism every message
Tenantry sends goes through. Configured by the `smtp_*` settings; without a host there is no
mailer, and features that need one say so instead of failing later."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Literal

from tenantry.config import Settings


class MailNotSent(Exception):
    """The SMTP server could not be reached or refused the message."""


@dataclass(frozen=True)
class Mailer:
    host: str
    port: int
    sender: str
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer | None:
        if not settings.smtp_host:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
            timeout=settings.smtp_timeout_seconds,
        )

    def message(self, *, to: str, subject: str, text: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="tenantry")
        message.set_content(text)
        return message

    def send(self, *, to: str, subject: str, text: str) -> None:
        message = self.message(to=to, subject=subject, text=text)
        context = ssl.create_default_context()
        try:
            client: smtplib.SMTP
            if self.security == "tls":
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.security == "starttls":
                    client.starttls(context=context)
                if self.username:
                    client.login(self.username, self.password or "")
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailNotSent(f"{self.host}:{self.port}: {exc}") from exc
