"""A real HTTP receiver on loopback that records what arrives and answers as told."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from monitor.alerting.payloads import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def signed_with(self, secret: str) -> bool:
        """The receiver's check: alignwatch's signature over this body, fresh timestamp."""
        return verify_signature(
            secret.encode(),
            self.headers[TIMESTAMP_HEADER],
            self.body,
            self.headers[SIGNATURE_HEADER],
        )


class Receiver:
    """Answers ``fail_first`` requests with 500, then 200."""

    def __init__(self, fail_first: int = 0, port: int = 0):
        self.received: list[Received] = []
        self.fail_first = fail_first
        self.answered = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                receiver.answered += 1
                if receiver.answered <= receiver.fail_first:
                    self.send_response(500)
                else:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
