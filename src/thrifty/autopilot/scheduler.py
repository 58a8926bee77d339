"""The scheduler inside `thrifty serve` (`autopilot.enabled`): a cycle every interval_s.

A thread of the serving process that starts `thrifty autopilot run` as a child process, so the
training's CPU and memory never sit in the gateway's process and a crash of one run cannot take
the gateway down. Off (the default) it is never created: the request path does not know it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from thrifty.autopilot.cycle import gateway_url
from thrifty.config import Settings

logger = logging.getLogger(__name__)


class Scheduler(threading.Thread):
    def __init__(self, settings: Settings, config: str | None) -> None:
        super().__init__(name="thrifty-autopilot", daemon=True)
        self.interval_s = settings.autopilot.interval_s
        self.command = [sys.executable, "-m", "thrifty.cli", "autopilot", "run"]
        self.command += ["--url", gateway_url(settings)]
        self.env = {**os.environ, "THRIFTY_HOME": str(settings.home)}
        if config:
            self.env["THRIFTY_CONFIG"] = str(Path(config).resolve())
        self.log_path = settings.home / "autopilot" / "scheduler.log"
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.once()

    def once(self) -> int | None:
        """One `thrifty autopilot run` over every task; its output goes to scheduler.log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.child = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
            code = self.child.wait()
        self.child = None
        if code != 0:
            logger.warning("autopilot run exited with %s (see %s)", code, self.log_path)
        return code

    def stop(self) -> None:
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()  # a run cut short continues next time


def start_scheduler(settings: Settings, config: str | None) -> Scheduler | None:
    """The running scheduler, or None when autopilot.enabled is off."""
    if not settings.autopilot.enabled:
        return None
    scheduler = Scheduler(settings, config)
    scheduler.start()
    logger.info("autopilot scheduler: a run every %.0f s", scheduler.interval_s)
    return scheduler
