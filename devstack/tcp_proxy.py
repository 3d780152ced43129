"""A TCP proxy that tests switch off and on, to make a real server vanish for a while.

``down()`` closes the listener (new connections are refused) and every open connection;
``up()`` listens again on the same port. Threads, so it works whatever event loop the test runs.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

from devstack.processes import free_port

ACCEPT_POLL_SECONDS = 0.05


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target`` while up."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self.accepted = 0  # connections accepted since it was made

    @property
    def url(self) -> str:
        """The proxy's address as an HTTP base URL."""
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        """Listen again (no-op if listening)."""
        with self._lock:
            if self._listener is not None:
                return
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            listener.settimeout(ACCEPT_POLL_SECONDS)
            self._listener = listener
        self._spawn(self._accept, listener)

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            open_sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in open_sockets:
            _cut(sock)

    def close(self) -> None:
        """Stop for good and wait for the threads."""
        self.down()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        self.up()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by down()
            self.accepted += 1
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _cut(client)
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    _cut(client)
                    _cut(server)
                    return
                self._sockets |= {client, server}
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _cut(source)
        _cut(sink)
        with self._lock:
            self._sockets -= {source, sink}


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
