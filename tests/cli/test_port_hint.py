"""A taken port: `thrifty serve` says who holds it and how to pick another, before loading."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from support import THRIFTY, free_port


def test_port_in_use_names_the_holder_and_another_port(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as held:
        held.bind(("127.0.0.1", port))
        held.listen()
        done = subprocess.run(
            [*THRIFTY, "serve", "--port", str(port)],
            env={**os.environ, "THRIFTY_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, no uvicorn traceback
    assert f"port {port} on 127.0.0.1 is already in use by pid {os.getpid()}" in lines[0]
    assert f"--port {port + 1}" in lines[0] and f"make run PORT={port + 1}" in lines[0]


def test_free_port_is_not_reported() -> None:
    from thrifty.ports import port_problem

    assert port_problem("127.0.0.1", free_port()) is None
