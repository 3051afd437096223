"""Local notification targets for apprise: a JSON webhook and an SMTP server, both on
127.0.0.1, recording what they receive so tests can assert on delivered alerts.

* `WebhookSink().url` is an apprise `json://127.0.0.1:PORT/hook` URL; apprise POSTs
  `{"version": "1.0", "title": ..., "message": ..., "type": "info"|..., "attachments": []}`.
* `SmtpSink().url(to=...)` is an apprise `mailto://127.0.0.1:PORT?from=...&to=...` URL:
  plain `mailto://` is apprise's insecure mode (no STARTTLS, no login without a user).
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

__all__ = ["MqttSink", "ReceivedMail", "SmtpSink", "WebhookRequest", "WebhookSink"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebhookRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the sink answered

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookSink:
    """A ThreadingHTTPServer collecting POSTed JSON bodies (and PUTs: apprise's `method=`).

    `received` holds the JSON of requests answered 2xx; `attempts` every request, failed
    ones included. `fail_next(n)` answers the next n requests with `status`;
    `set_failing(True)` answers every request so until `set_failing(False)`."""

    def __init__(self, path: str = "/hook") -> None:
        self.path = path if path.startswith("/") else "/" + path
        self._attempts: list[WebhookRequest] = []
        self._cond = threading.Condition()
        self._fail_next = 0
        self._fail_status = 500
        self._failing = False
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name=f"webhook-sink-{self.port}")
        self._thread.start()

    @property
    def url(self) -> str:
        """The apprise URL of this sink."""
        return f"json://127.0.0.1:{self.port}{self.path}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def attempts(self) -> list[WebhookRequest]:
        with self._cond:
            return list(self._attempts)

    @property
    def received(self) -> list[dict[str, Any]]:
        with self._cond:
            ok = [r for r in self._attempts if 200 <= r.status < 300]
        out = []
        for r in ok:
            try:
                out.append(r.json())
            except ValueError:
                out.append({"_raw": r.body.decode(errors="replace")})
        return out

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        with self._cond:
            self._fail_next = n
            self._fail_status = status

    def set_failing(self, failing: bool, status: int = 500) -> None:
        with self._cond:
            self._failing = failing
            self._fail_status = status

    def clear(self) -> None:
        with self._cond:
            self._attempts.clear()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least `n` bodies were received; returns them (AssertionError if not)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for r in self._attempts if 200 <= r.status < 300) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = [(r.status, r.body[:200]) for r in self._attempts]
                    raise AssertionError(f"webhook sink: wanted {n} deliveries in {timeout}s, "
                                         f"attempts so far: {got}")
                self._cond.wait(left)
        return self.received

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decide(self) -> int:
        with self._cond:
            if self._failing:
                return self._fail_status
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_status
            return 200

    def _record(self, request: WebhookRequest) -> None:
        with self._cond:
            self._attempts.append(request)
            self._cond.notify_all()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = sink._decide()
                answer = b"{}" if status < 400 else b'{"error": "simulated failure"}'
                # Record before answering, so wait_for() returning means "delivered".
                sink._record(WebhookRequest(self.command, self.path, dict(self.headers.items()),
                                            body, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = _handle
            do_PUT = _handle
            do_PATCH = _handle

        return Handler


@dataclass
class ReceivedMail:
    """One message the SMTP sink accepted. `mail["Subject"]` reads the parsed message."""

    message: EmailMessage
    mail_from: str  # envelope
    rcpt_tos: list[str] = field(default_factory=list)  # envelope

    def __getitem__(self, header: str) -> Any:
        return self.message[header]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def sender(self) -> str:
        return str(self.message["From"] or "")

    @property
    def to(self) -> str:
        return str(self.message["To"] or "")

    def _part(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None:
            return None
        content = part.get_content()
        return content if isinstance(content, str) else None

    @property
    def text(self) -> str | None:
        return self._part("plain")

    @property
    def html(self) -> str | None:
        return self._part("html")


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 (no TLS, no auth) keeping every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self._messages: list[ReceivedMail] = []
        self._cond = threading.Condition()
        self.port = _free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def url(self, to: str = "ops@example.test", from_: str = "tagwatch@example.test") -> str:
        """An apprise URL delivering to this sink: `mailto://` (not `mailtos://`) is apprise's
        insecure mode, and without a user apprise does not try to log in."""
        return (f"mailto://127.0.0.1:{self.port}"
                f"?from={quote(from_, safe='@')}&to={quote(to, safe='@,')}")

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._cond:
            return list(self._messages)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"smtp sink: wanted {n} messages in {timeout}s, "
                                         f"got {len(self._messages)}")
                self._cond.wait(left)
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def close(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()


class MqttSink:
    """A real MQTT broker (Debian's mosquitto) on 127.0.0.1, anonymous, and a paho-mqtt
    subscriber keeping the raw payload of every message published to `topic`.
    `url` is the apprise URL publishing there (`mqtt://127.0.0.1:PORT/TOPIC`)."""

    def __init__(self, directory: Any, topic: str = "tagwatch/alerts") -> None:
        import shutil
        import subprocess
        from pathlib import Path

        import paho.mqtt.client as mqtt

        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if binary is None:
            raise FileNotFoundError("mosquitto")
        self.topic = topic
        self.port = _free_port()
        config = Path(directory) / "mosquitto.conf"
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                          "persistence false\nlog_dest stderr\n")
        self._broker = subprocess.Popen([binary, "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._payloads: list[bytes] = []
        self._cond = threading.Condition()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tagwatch-sink")
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_connect = lambda client, *args: client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                self._client.connect("127.0.0.1", self.port)
                break
            except OSError:
                if time.monotonic() > deadline or self._broker.poll() is not None:
                    self.close()
                    raise
                time.sleep(0.05)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError("mqtt sink: no subscription within 10s")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}/{self.topic}"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self._cond:
            self._payloads.append(bytes(message.payload))
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._payloads) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"mqtt sink: wanted {n} messages in {timeout}s, "
                                         f"got {len(self._payloads)}")
                self._cond.wait(left)
            return list(self._payloads)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()
        self._broker.terminate()
        try:
            self._broker.wait(5)
        except Exception:  # noqa: BLE001 - a stuck broker is killed
            self._broker.kill()
            self._broker.wait(5)
        if self._broker.stderr is not None:
            self._broker.stderr.close()

    def __enter__(self) -> MqttSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._sink._add(ReceivedMail(message, str(envelope.mail_from or ""),
                                     [str(r) for r in envelope.rcpt_tos]))
        return "250 Message accepted for delivery"
