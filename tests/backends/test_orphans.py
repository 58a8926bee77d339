"""A new gateway ends the engines a killed gateway of its home left behind.

(kill -9 of a gateway taking its engines along: tests/backends/test_pool.py with stand-in
engines, tests/e2e/test_local_models.py with real ones.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from thrifty.backends import reaper


def test_a_new_start_ends_an_engine_whose_gateway_is_gone(tmp_path: Path) -> None:
    # a stand-in engine, started without the death signal, as a gateway on another OS would
    stale = subprocess.Popen(["sleep", "60"])
    dead_gateway = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_gateway.wait()
    reaper.run_dir(tmp_path).mkdir(parents=True)
    path = reaper.run_dir(tmp_path) / f"engine-{stale.pid}.pid"
    path.write_text(f"{stale.pid} {dead_gateway.pid} {reaper._cmdline(stale.pid)}\nm\n")
    # an engine of a gateway that still runs (this test process) is left alone
    alive = subprocess.Popen(["sleep", "60"])
    reaper.record(tmp_path, "other", alive.pid)
    try:
        assert reaper.reap_stale(tmp_path) == [stale.pid]
        assert stale.wait(timeout=10) == -signal.SIGKILL
        assert not path.exists()
        assert alive.poll() is None
    finally:
        for proc in (stale, alive):
            proc.kill()
            proc.wait()


def test_a_reused_pid_is_not_killed(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    reaper.run_dir(tmp_path).mkdir(parents=True)
    # recorded as llama-server, but the pid now runs something else
    (reaper.run_dir(tmp_path) / f"engine-{other.pid}.pid").write_text(
        f"{other.pid} 999999999 /usr/bin/llama-server\nm\n"
    )
    try:
        assert reaper.reap_stale(tmp_path) == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
