"""No orphaned engines: each one dies with its gateway, and a stale one is ended at the next start.

Two guards, because either alone leaves a gap:

- On Linux the engine is started with PR_SET_PDEATHSIG = SIGKILL, so the kernel kills it the
  moment the gateway dies, `kill -9` included (no Python code runs then to stop it). The signal
  fires when the *thread* that forked the engine exits, so engines are always started from an
  event loop's thread, which lives as long as the engine is wanted.
- Each engine's pid (and its gateway's) is written to `$THRIFTY_HOME/run/`; a new gateway of the
  same home ends the engines whose gateway is gone (non-Linux systems, or a pid namespace that
  lost the signal), after checking that the pid still runs the program that was recorded, so a
  reused pid is never killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _set_pdeathsig() -> None:
    """Runs in the child between fork and exec: die by SIGKILL when the parent dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that ties the child's life to this process, where the OS supports it."""
    return _set_pdeathsig if sys.platform.startswith("linux") else None


def run_dir(home: Path) -> Path:
    return home / "run"


def record(home: Path, name: str, pid: int) -> Path:
    """Note that this gateway runs engine `pid` (file name: the engine's name and pid)."""
    directory = run_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"engine-{pid}.pid"
    path.write_text(f"{pid} {os.getpid()} {_cmdline(pid)[:200]}\n{name}\n", encoding="utf-8")
    return path


def forget(path: Path | None) -> None:
    if path is None:
        return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale(home: Path) -> list[int]:
    """End the engines recorded under `home` whose gateway is gone; returns their pids."""
    directory = run_dir(home)
    if not directory.is_dir():
        return []
    ended = []
    for path in directory.glob("engine-*.pid"):
        try:
            fields = path.read_text(encoding="utf-8").split("\n", 1)[0].split(" ", 2)
            pid, owner = int(fields[0]), int(fields[1])
            program = fields[2] if len(fields) > 2 else ""
        except (OSError, ValueError, IndexError):
            forget(path)
            continue
        if _alive(owner):
            continue  # its gateway (maybe this one) still runs it
        if _alive(pid) and program and _cmdline(pid) == program:
            logger.warning("ending engine %d left behind by gateway %d", pid, owner)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            ended.append(pid)
        forget(path)
    if ended:
        time.sleep(0.1)  # the kernel frees their ports and memory
    return ended
