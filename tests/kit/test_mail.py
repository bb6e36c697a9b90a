"""The mailer against a real SMTP server (aiosmtpd on a loopback port)."""

from __future__ import annotations

import pytest

from support.smtp import smtp_server
from tenantry.config import Settings
from tenantry.kit.mail import Mailer, MailNotSent


def test_no_host_no_mailer() -> None:
    assert Mailer.from_settings(Settings(secret_key="x" * 40)) is None


def test_a_message_reaches_the_server_as_written() -> None:
    with smtp_server() as inbox:
        settings = Settings(
            secret_key="x" * 40,
            smtp_host=inbox.host,
            smtp_port=inbox.port,
            smtp_security="none",
            smtp_from="Tenantry <noreply@tenantry.test>",
        )
        mailer = Mailer.from_settings(settings)
        assert mailer is not None
        mailer.send(to="ann@example.com", subject="Hello Ann", text="Line one.\nLine two é.\n")
    (message,) = inbox.messages
    assert message["From"] == "Tenantry <noreply@tenantry.test>"
    assert message["To"] == "ann@example.com"
    assert message["Subject"] == "Hello Ann"
    assert message["Message-ID"].endswith("@tenantry>")
    assert message.get_content().splitlines() == ["Line one.", "Line two é."]


def test_an_unreachable_server_is_said_plainly() -> None:
    with smtp_server() as inbox:
        port = inbox.port
    mailer = Mailer(host="127.0.0.1", port=port, sender="t@localhost", security="none")
    with pytest.raises(MailNotSent, match=f"127.0.0.1:{port}"):
        mailer.send(to="ann@example.com", subject="s", text="t")
