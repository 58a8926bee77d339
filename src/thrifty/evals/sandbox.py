"""Run untrusted Python (a model's HumanEval completion) in a locked-down subprocess.

The child is a fresh interpreter (``python -I``) in its own session and an empty temporary
directory, started with a minimal environment. Before it runs the program it applies, itself:

- **network**: as root it calls ``unshare(CLONE_NEWNET)``: the process gets a network namespace
  of its own with only a downed loopback, so no socket can reach anything, whatever the code does
  (ctypes, raw syscalls). Without the privilege (not root, or a container that forbids it) it
  falls back to replacing :mod:`socket`'s constructors and resolvers with ones that raise: enough
  for model-written code that is wrong rather than hostile, and reported as ``socket-guard``.
- **processes**: ``RLIMIT_NPROC`` = 1 makes every ``fork``/``clone`` (threads too) fail with
  EAGAIN. The kernel ignores that limit for root, so as root the child first drops to the
  ``nobody`` user (which also takes away write access to the files of root); where that is not
  possible it replaces ``os.fork`` and the other process-spawning calls instead (``fork-guard``).
  ``nobody`` may be unable to read the interpreter's standard library (pyenv under ``/root``), so
  the modules in `PRELOAD` are imported before the drop; others then fail to import.
- **memory**: ``RLIMIT_AS`` (allocations beyond it raise ``MemoryError``);
- **time**: ``RLIMIT_CPU`` in the child, and a wall-clock timeout in the parent that kills the
  child's whole process group;
- **files**: ``RLIMIT_FSIZE`` and ``RLIMIT_NOFILE``, no core dumps.

`SandboxResult.isolation` names the mechanisms that were in force for each run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

_NOBODY = 65534
_KEEP_OUTPUT = 2000

# The child's own prologue: it reads the program from stdin, locks itself down, then runs it.
_BOOTSTRAP = r"""
import ctypes, json, os, resource, sys
limits = json.loads(sys.argv[1])
program = sys.stdin.read()
sys.stdin.close()
applied = []

def _network_guard():
    import socket
    def blocked(*args, **kwargs):
        raise OSError(101, "network access is disabled in the sandbox")
    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            blocked()
    socket.socket = NoSocket
    for name in ("create_connection", "create_server", "getaddrinfo", "gethostbyname",
                 "gethostbyname_ex", "gethostbyaddr", "socketpair", "fromfd"):
        setattr(socket, name, blocked)
    sys.modules["_socket"].socket = NoSocket

def _fork_guard():
    import subprocess
    def blocked(*args, **kwargs):
        raise OSError(11, "creating processes is disabled in the sandbox")
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "popen",
                 "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp",
                 "execlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle",
                 "spawnlp", "spawnlpe"):
        if hasattr(os, name):
            setattr(os, name, blocked)
    subprocess.Popen = blocked
    sys.modules["_posixsubprocess"].fork_exec = blocked

root = os.geteuid() == 0
if root and ctypes.CDLL(None, use_errno=True).unshare(0x40000000) == 0:  # CLONE_NEWNET
    applied.append("netns")
else:
    _network_guard()
    applied.append("socket-guard")

memory = limits["memory_bytes"]
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
applied += ["rlimit-as", "rlimit-cpu", "rlimit-fsize"]

dropped = False
if root:
    # the interpreter may live where nobody cannot read (e.g. pyenv under /root): import the
    # standard modules that solutions use while still able to, so they come from sys.modules
    for name in limits["preload"]:
        try:
            __import__(name)
        except ImportError:
            pass
    try:
        os.setgroups([])
        os.setgid(limits["uid"])
        os.setuid(limits["uid"])
        dropped = True
    except OSError:
        pass
if dropped or not root:
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
    applied.append("nobody+rlimit-nproc" if dropped else "rlimit-nproc")
else:
    _fork_guard()
    applied.append("fork-guard")

sys.stderr.write("sandbox: " + ",".join(applied) + "\n")
sys.stderr.flush()
del ctypes, json, resource, limits, root, dropped, applied, _network_guard, _fork_guard
exec(compile(program, "<candidate>", "exec"), {"__name__": "__main__"})
"""


# Imported before the child drops to `nobody` (see the module docstring and the bootstrap).
PRELOAD = (
    "abc", "array", "bisect", "cmath", "collections", "collections.abc", "copy", "dataclasses",
    "datetime", "decimal", "encodings.idna", "enum", "fractions", "functools", "hashlib", "heapq",
    "io", "itertools", "json", "math", "numbers", "operator", "random", "re", "socket",
    "statistics", "string", "subprocess", "sys", "textwrap", "threading", "time", "typing",
    "unicodedata",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Limits:
    """What one run may use."""

    timeout_s: float = 10.0
    memory_bytes: int = 1 << 30
    file_bytes: int = 16 << 20


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How a sandboxed program ended."""

    passed: bool  # exited 0 within the time limit
    returncode: int | None  # None: killed at the wall-clock timeout
    timed_out: bool  # the wall-clock or the CPU-time limit ended it
    output: str  # the tail of stdout + stderr
    isolation: tuple[str, ...]  # the mechanisms in force, as the child reported them
    seconds: float


def run_python(program: str, limits: Limits | None = None) -> SandboxResult:
    """Run ``program`` with the limits above; blocks until it ends or is killed."""
    limits = limits or Limits()
    workdir = tempfile.mkdtemp(prefix="thrifty-sandbox-")
    if os.geteuid() == 0:
        os.chown(workdir, _NOBODY, _NOBODY)
    child_limits = {
        "memory_bytes": limits.memory_bytes,
        "cpu_s": max(1, int(limits.timeout_s + 0.999)),
        "file_bytes": limits.file_bytes,
        "uid": _NOBODY,
        "preload": PRELOAD,
    }
    env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", _BOOTSTRAP, json.dumps(child_limits)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env=env,
        start_new_session=True,  # its own process group: one killpg ends it and its children
    )
    timed_out = False
    try:
        raw, _ = proc.communicate(program.encode(), timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        raw, _ = proc.communicate()
    finally:
        _kill_group(proc.pid)  # anything it left behind
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    text = raw.decode("utf-8", "replace")
    isolation: tuple[str, ...] = ()
    first, _, rest = text.partition("\n")
    if first.startswith("sandbox: "):
        isolation = tuple(first.removeprefix("sandbox: ").split(","))
        text = rest
    code = None if timed_out else proc.returncode
    # the CPU limit ends a busy loop with SIGXCPU (then SIGKILL) about when the wall clock would
    timed_out = timed_out or code == -signal.SIGXCPU
    return SandboxResult(
        passed=code == 0,
        returncode=code,
        timed_out=timed_out,
        output=text[-_KEEP_OUTPUT:],
        isolation=isolation,
        seconds=seconds,
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
