"""SQLite connections as every store module opens them: WAL, NORMAL sync, rows by name."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"unsupported database URL {url!r} (expected sqlite:///path)")
    return Path(url.removeprefix("sqlite:///")).expanduser()


def connect(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn
