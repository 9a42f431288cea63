"""`emnist-draw serve` on a port that is taken: one clear line and a non-zero exit, before the
model (or anything else) loads."""

from __future__ import annotations

import socket
import subprocess

from app_helpers import serve_command


def test_a_taken_port_is_named_before_anything_loads() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # log level info: had the model loaded, its "loaded and warmed" line would be here.
        result = subprocess.run(serve_command("--host", "127.0.0.1", "--port", str(port),
                                              "--log-level", "info"),
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [f"emnist-draw: 127.0.0.1:{port} is already in use: stop what serves there, "
                     "or pick another with --port"], result.stderr
    assert "model" not in result.stderr and "Errno" not in result.stderr


def test_an_address_that_is_not_this_machines_is_named() -> None:
    # 192.0.2.1 (TEST-NET-1) is never a local address: binding fails with EADDRNOTAVAIL, locally,
    # with no packet sent.
    result = subprocess.run(serve_command("--host", "192.0.2.1", "--port", "8000"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("emnist-draw: 192.0.2.1:8000 cannot be used: "), result.stderr
    assert len(result.stderr.splitlines()) == 1
