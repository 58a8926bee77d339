"""Is a port free, and if not, who holds it: the one-line answer `serve` and `doctor` give.

uvicorn binds only after the app's start-up (the local engine has loaded by then) and reports a
taken port as a bare `[Errno 98]`; checking first costs one bind and says what to do instead.
The holder is found the way `ss -ltnp` finds it: the listening socket's inode in /proc/net/tcp*,
then the process with that inode among its open files (only our own processes are readable).
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path


def port_in_use(host: str, port: int) -> bool:
    """Whether binding `host:port` fails because something else holds it."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # as uvicorn binds: SO_REUSEADDR, so a port in TIME_WAIT is not taken
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:  # another problem (no such address): uvicorn will say it
            return exc.errno == errno.EADDRINUSE
    return False


def holder(port: int) -> str | None:
    """`pid 123 (python -m thrifty.cli serve …)` for the process listening on `port`, if known."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return f"pid {entry.name} ({_cmdline(entry)})"
        except OSError:  # another user's process, or gone meanwhile
            continue
    return "a process of another user" if os.geteuid() != 0 else None


def _listening_inodes(port: int) -> set[str]:
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is field 9
            if len(fields) < 10 or fields[3] != "0A":
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def _cmdline(entry: Path) -> str:
    try:
        words = (entry / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words if w)
    return text if len(text) <= 80 else text[:77] + "..."


def port_problem(host: str, port: int) -> str | None:
    """One line saying the port is taken, by whom, and how to pick another; None when free."""
    if not port_in_use(host, port):
        return None
    who = holder(port)
    by = f" by {who}" if who else ""
    other = port + 1
    return (
        f"port {port} on {host} is already in use{by}; pick another: "
        f"`thrifty serve --port {other}` (or `make run PORT={other}`, or THRIFTY_PORT={other})"
    )
