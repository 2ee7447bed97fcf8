"""A server that accepts connections and never answers: a wedged daemon or registry."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def silent_server(unix_path: Path | None = None) -> Iterator[str]:
    """Yield ``127.0.0.1:PORT`` (TCP), or the socket path when ``unix_path`` is given."""
    if unix_path is not None:
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(unix_path))
        address = str(unix_path)
    else:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{server.getsockname()[1]}"
    server.listen(8)
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield address
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()
