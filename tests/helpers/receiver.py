"""A webhook receiver for the tests: a threaded HTTP server on loopback that answers from a script."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """Answers each POST with the next of ``script`` (a status code, or ("sleep", seconds, status)), then 200."""

    url: str
    script: list[int | tuple[str, float, int]]
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """The first ``count`` requests, once that many arrived."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"only {len(self.received)} of {count} requests arrived"
            time.sleep(0.05)
        return self.received[:count]


@contextmanager
def receiver(*script: int | tuple[str, float, int]) -> Iterator[Receiver]:
    """A running receiver on 127.0.0.1 at a free port."""
    state = Receiver(url="", script=list(script))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                step = state.script.pop(0) if state.script else 200
            status = step if isinstance(step, int) else step[2]
            if not isinstance(step, int):
                time.sleep(step[1])
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers.items()), body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
