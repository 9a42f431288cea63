"""`emnist-draw serve --workers N`: uvicorn's own supervisor and workers, on a listening socket
that lets them keep TCP_NODELAY.

With --workers > 1 uvicorn binds the socket itself and leaves its `proto` at 0 (uvicorn issue
#3149, open as of uvicorn 0.54). Accepted connections inherit that, and asyncio turns Nagle's
algorithm off (TCP_NODELAY) only on sockets that say IPPROTO_TCP; so each answer's body, written
after its headers, waited for the client's delayed ACK: every keep-alive request after the first
took ~44 ms (bench/http_load.py, 2 workers, concurrency 1; 2 ms with 1 worker). Here the socket is
bound by uvicorn as before and only its protocol is named; the workers inherit it, and with it
TCP_NODELAY on every connection.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


def run(app: str, workers: int, **options: Any) -> None:
    """uvicorn.run(app, factory=True, workers=workers, **options), with the socket fixed."""
    config = uvicorn.Config(app, factory=True, workers=workers, **options)
    sock = with_tcp_protocol(config.bind_socket())
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass


def with_tcp_protocol(sock: socket.socket) -> socket.socket:
    """The same listening socket, its protocol named IPPROTO_TCP (which its children inherit)."""
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock
