"""`emnist-draw serve --workers N`: uvicorn's own supervisor and workers, on a listening socket
that lets them keep TCP_NODELAY.

With --workers > 1 uvicorn binds the socket itself and leaves its `proto` at 0 (uvicorn issue
#3149, open as of uvicorn 0.54). Accepted connections inherit that, and asyncio turns Nagle's
algorithm off (TCP_NODELAY) only on sockets that say IPPROTO_TCP; so each answer's body, written
after its headers, waited for the client's delayed ACK: every keep-alive request after the first
took ~44 ms (bench/http_load.py, 2 workers, concurrency 1; 2 ms with 1 worker). Here the socket is
bound by uvicorn as before and only its protocol is named; the workers inherit it, and with it
TCP_NODELAY on every connection.

It also holds the connection settings of both (uvicorn_options): the HTTP protocol, timeouts, and
which proxies' forwarded headers to trust.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.supervisors import Multiprocess

from emnist_draw.server.schemas import MAX_BODY_BYTES
from emnist_draw.server.security import KEEP_ALIVE_S


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


# ------------------------------------------------------------------ connections
# uvicorn's h11 protocol, as shipped, closes nothing that has not finished a request: a connection
# that sends half a request line, or keeps trickling a body after its answer, is kept forever
# (every byte received cancels the keep-alive timer), and a chunk that announces 2**76 bytes waits
# for the request timeout. GuardedH11Protocol closes those, as nginx's client_header_timeout and
# client_max_body_size do.
HEADER_TIMEOUT_S = 5  # from connecting to a complete request head (request line and headers)


class GuardedH11Protocol(H11Protocol):
    """H11Protocol with one deadline per request head, and chunks no larger than the body limit.

    uvicorn's keep-alive timer becomes that deadline: armed when the connection opens (for
    HEADER_TIMEOUT_S) and after each response (for timeout_keep_alive), and cancelled only when a
    complete request head arrives, never by a byte of data. So a connection is closed when it
    does not finish its request head in time, and when it keeps sending the rest of a body after
    its answer (a 413, a 503) instead of a next request.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(HEADER_TIMEOUT_S,
                                                            self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        # As H11Protocol's, but the timer stays: handle_events cancels it on a request head.
        self.conn.receive_data(data)
        self.handle_events()
        # h11 keeps the size of the chunk it is reading here (h11 0.14-0.16); one that is larger
        # than any body this server accepts is refused now, not after the request timeout.
        chunk = getattr(getattr(self.conn, "_reader", None), "_bytes_in_chunk", 0)
        if chunk > MAX_BODY_BYTES and not self.transport.is_closing():
            self._refuse(413, f"a chunk of {chunk:,} bytes is over the {MAX_BODY_BYTES:,}-byte "
                              "body limit")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer status and close, as H11Protocol.send_400_response does (the app, waiting for
        the body, sees a disconnect)."""
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        body = json.dumps({"detail": detail}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        for event in (h11.Response(status_code=status, headers=headers), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def uvicorn_options(forwarded_allow_ips: str | None = None) -> dict[str, Any]:
    """The connection settings `emnist-draw serve` gives uvicorn, with one worker or several.

    X-Forwarded-For is trusted only from the proxies named in forwarded_allow_ips: uvicorn's
    default trusts 127.0.0.1, so any local client could name itself any address and leave the
    rate limit behind.
    """
    return {"http": GuardedH11Protocol, "timeout_keep_alive": KEEP_ALIVE_S,
            "proxy_headers": bool(forwarded_allow_ips),
            "forwarded_allow_ips": forwarded_allow_ips or None}
