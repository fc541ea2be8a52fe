"""Where alerts land in tests: a local HTTP server (webhook and Slack) and an SMTP server.

`receiver` is a fixture for every test (tests/conftest.py loads this module as a plugin);
`connections` points Intentflow's alert connections at it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ci import skip_or_fail


class Receiver:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.mails: list = []


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str, int]]:
    """A local HTTP server recording JSON POSTs, and an aiosmtpd SMTP server recording mail."""
    try:
        import aiosmtpd.controller as aiosmtpd
    except ImportError:
        skip_or_fail("aiosmtpd not installed (pip install -e '.[test]')")
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.posts.append((self.path, json.loads(body)))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()

    class Mailbox:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            got.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 OK"

    with socket.socket() as probe:  # aiosmtpd checks its port by connecting: pick one first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = aiosmtpd.Controller(Mailbox(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield got, f"http://127.0.0.1:{http.server_address[1]}", port
    finally:
        http.shutdown()
        smtp.stop()


def connections(monkeypatch: pytest.MonkeyPatch, base: str, smtp_port: int) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTENTFLOW_WEBHOOK", json.dumps({"conn_type": "http", "host": f"{base}/dq"})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTENTFLOW_SLACK",
        json.dumps({"conn_type": "slackwebhook", "host": base, "password": "/slack/T0/B0/XYZ"}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_INTENTFLOW_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "af@localhost"},
            }
        ),
    )
    monkeypatch.setenv("INTENTFLOW_ALERT_EMAIL_TO", "data-owner@example.com")
