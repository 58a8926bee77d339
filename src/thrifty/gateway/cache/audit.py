"""Recent semantic hits, side by side with the question they matched, for `thrifty cache audit`.

A semantic hit answers one question with another's answer: the audit is where a person checks
that the two were the same question. Each hit is one JSON line in `$THRIFTY_HOME/cache-audit.jsonl`
(every worker of one home appends to the same file; a line is one small write). Text is masked
before it is written, like everything thrifty stores: each span the PII detector finds becomes
`[KIND]`, so the file never holds an email, phone or id number. The file keeps about the last
`cache.audit_hits` hits: past twice that many lines it is rewritten with the newest half.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thrifty.gateway.pii import PIIDetector

FILENAME = "cache-audit.jsonl"
_detector: PIIDetector | None = None
_detector_lock = threading.Lock()


def mask(text: str) -> str:
    """`text` with every span of personal data replaced by `[KIND]`."""
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                from thrifty.gateway.pii import PIIDetector

                _detector = PIIDetector()
    findings = _detector.scan(text)
    if not findings:
        return text
    pieces: list[str] = []
    end = 0
    for finding in findings:
        pieces += (text[end : finding.start], f"[{finding.kind.upper()}]")
        end = finding.end
    pieces.append(text[end:])
    return "".join(pieces)


class AuditLog:
    """Appends hits to the audit file; thread-safe within a process."""

    def __init__(self, path: Path, keep: int) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        self._lines: int | None = None  # counted on first write

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self._lines is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lines = _count_lines(self.path)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
            self._lines += 1
            if self._lines > 2 * self.keep:
                self._lines = _trim(self.path, self.keep)


def hit_record(
    *,
    request_id: str,
    tenant: str,
    question: str,
    matched: str,
    similarity: float,
    threshold: float,
    key: str,
) -> dict[str, Any]:
    """One audit line; the question is masked here, the matched one was masked when indexed."""
    return {
        "time": round(time.time(), 3),
        "request_id": request_id,
        "tenant": tenant,
        "similarity": round(similarity, 4),
        "threshold": round(threshold, 4),
        "question": mask(question),
        "matched": matched,
        "entry": key,
    }


def read(path: Path, limit: int, tenant: str | None = None) -> list[dict[str, Any]]:
    """The newest `limit` hits (of one tenant), newest first."""
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash mid-write
        if isinstance(row, dict) and (tenant is None or row.get("tenant") == tenant):
            rows.append(row)
    return rows[::-1][:limit]


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def _trim(path: Path, keep: int) -> int:
    lines = path.read_bytes().splitlines(keepends=True)[-keep:]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.writelines(lines)
    os.replace(tmp, path)
    return len(lines)
