"""Files and batches (OpenAI's Batch API), durable in the store so every replica sees them.

A batch's input lines are rows of `batch_lines`; a line's result is written once, by an UPDATE
that only takes a line still `pending`, so a line that has a result is never run again and each
custom_id appears exactly once in the output. The runner of one process holds a lease on a batch
(renewed while it works): a killed process's lease runs out and another process (or the same one,
restarted) picks the batch up where it stopped. The output and error files are written from the
rows when the batch finishes.

Plain blocking calls on one connection; the gateway runs them on one worker thread.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.store.db import Connection, connect
from thrifty.store.migrations import migrate

FINAL = frozenset({"completed", "failed", "expired", "cancelled"})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class BatchLine:
    line: int
    custom_id: str
    body: dict[str, Any]


class BatchStore:
    """Files, batches and their lines (one connection; not shared between threads)."""

    def __init__(self, url: str) -> None:
        self.conn: Connection = connect(url)
        migrate(self.conn)

    def close(self) -> None:
        self.conn.close()

    # -- files ------------------------------------------------------------------------------------

    def add_file(self, tenant: str, purpose: str, filename: str, content: str) -> dict[str, Any]:
        file_id = new_id("file")
        size = len(content.encode())
        now = time.time()
        self.conn.execute(
            "INSERT INTO files (id, tenant, purpose, filename, bytes, created_at, content) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (file_id, tenant, purpose, filename, size, now, content),
        )
        return _file(
            {"id": file_id, "purpose": purpose, "filename": filename, "bytes": size,
             "created_at": now}
        )  # fmt: skip

    def file(self, file_id: str, tenant: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, purpose, filename, bytes, created_at FROM files "
            "WHERE id = ? AND tenant = ?",
            (file_id, tenant),
        ).fetchone()
        return _file(dict(row)) if row else None

    def file_content(self, file_id: str, tenant: str) -> str | None:
        row = self.conn.execute(
            "SELECT content FROM files WHERE id = ? AND tenant = ?", (file_id, tenant)
        ).fetchone()
        return None if row is None else str(row["content"])

    def files(self, tenant: str, purpose: str | None = None, limit: int = 100) -> list[dict]:
        sql = "SELECT id, purpose, filename, bytes, created_at FROM files WHERE tenant = ?"
        args: list[Any] = [tenant]
        if purpose:
            sql, args = sql + " AND purpose = ?", [*args, purpose]
        rows = self.conn.execute(sql + " ORDER BY created_at DESC LIMIT ?", [*args, limit])
        return [_file(dict(r)) for r in rows]

    def delete_file(self, file_id: str, tenant: str) -> bool:
        cur = self.conn.execute("DELETE FROM files WHERE id = ? AND tenant = ?", (file_id, tenant))
        return cur.rowcount == 1

    # -- batches ----------------------------------------------------------------------------------

    def add_batch(
        self,
        *,
        tenant: str,
        key_id: str | None,
        endpoint: str,
        input_file_id: str,
        completion_window: str,
        window_s: float,
        not_before: float,
        run_window: str,
        metadata: dict[str, Any] | None,
        lines: list[BatchLine],
        invalid: dict[int, dict[str, Any]],
    ) -> str:
        """A new batch in progress; `invalid` lines (by number) fail at once with their error."""
        batch_id = new_id("batch")
        now = time.time()
        meta = orjson.dumps(metadata).decode() if metadata is not None else None
        rows = []
        for item in lines:
            error = invalid.get(item.line)
            rows.append(
                (batch_id, item.line, item.custom_id, orjson.dumps(item.body).decode(),
                 "failed" if error else "pending", 400 if error else None,
                 orjson.dumps(error).decode() if error else None)
            )  # fmt: skip
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO batches (id, tenant, key_id, endpoint, input_file_id, "
                "completion_window, status, created_at, expires_at, not_before, run_window, "
                "in_progress_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_id, tenant, key_id, endpoint, input_file_id, completion_window,
                 "in_progress", now, now + window_s, not_before, run_window, now, meta),
            )  # fmt: skip
            self.conn.executemany(
                "INSERT INTO batch_lines (batch_id, line, custom_id, body, status, status_code, "
                "response) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return batch_id

    def batch(self, batch_id: str, tenant: str | None = None) -> dict[str, Any] | None:
        """The batch in OpenAI's shape, with its counts and thrifty's cost report."""
        sql, args = "SELECT * FROM batches WHERE id = ?", [batch_id]
        if tenant is not None:
            sql, args = sql + " AND tenant = ?", [*args, tenant]
        row = self.conn.execute(sql, args).fetchone()
        return None if row is None else self._shape(dict(row))

    def batches(self, tenant: str, limit: int = 20, after: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM batches WHERE tenant = ?", [tenant]
        if after:
            mark = self.conn.execute(
                "SELECT created_at FROM batches WHERE id = ?", (after,)
            ).fetchone()
            if mark is not None:
                sql, args = sql + " AND created_at < ?", [*args, mark["created_at"]]
        rows = self.conn.execute(sql + " ORDER BY created_at DESC LIMIT ?", [*args, limit])
        return [self._shape(dict(r)) for r in rows]

    def cancel(self, batch_id: str, tenant: str) -> dict[str, Any] | None:
        now = time.time()
        self.conn.execute(
            "UPDATE batches SET status = 'cancelling', cancelling_at = ? "
            "WHERE id = ? AND tenant = ? AND status IN ('validating', 'in_progress')",
            (now, batch_id, tenant),
        )
        return self.batch(batch_id, tenant)

    def _shape(self, row: dict[str, Any]) -> dict[str, Any]:
        counts = self.conn.execute(
            "SELECT COUNT(*) AS total, "
            "SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) AS done, "
            "SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed, "
            "SUM(COALESCE(cost_nanos, 0)) AS cost, SUM(COALESCE(baseline_nanos, 0)) AS baseline "
            "FROM batch_lines WHERE batch_id = ?",
            (row["id"],),
        ).fetchone()
        out: dict[str, Any] = {
            "id": row["id"],
            "object": "batch",
            "endpoint": row["endpoint"],
            "errors": None,
            "input_file_id": row["input_file_id"],
            "completion_window": row["completion_window"],
            "status": row["status"],
            "output_file_id": row["output_file_id"],
            "error_file_id": row["error_file_id"],
            "metadata": orjson.loads(row["metadata"]) if row["metadata"] else None,
            "request_counts": {
                "total": int(counts["total"] or 0),
                "completed": int(counts["done"] or 0),
                "failed": int(counts["failed"] or 0),
            },
            "x_thrifty": {
                "cost_usd": f"{int(counts['cost'] or 0) / 1e9:.9f}",
                "baseline_usd": f"{int(counts['baseline'] or 0) / 1e9:.9f}",
                "window": row["run_window"],
                "not_before": int(row["not_before"]),
            },
        }
        for key in ("created_at", "expires_at", "in_progress_at", "finalizing_at", "completed_at",
                    "cancelling_at", "cancelled_at", "failed_at", "expired_at"):  # fmt: skip
            out[key] = None if row[key] is None else int(row[key])
        return out

    # -- the runner's side ------------------------------------------------------------------------

    def claim(self, owner: str, lease_s: float, now: float | None = None) -> dict[str, Any] | None:
        """Take the lease on one batch that has work to do now; None when there is none."""
        now = time.time() if now is None else now
        candidates = self.conn.execute(
            "SELECT id, tenant, key_id, endpoint FROM batches "
            "WHERE status IN ('in_progress', 'cancelling', 'finalizing') "
            "AND (status <> 'in_progress' OR not_before <= ? OR expires_at <= ?) "
            "AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?) "
            "ORDER BY created_at LIMIT 5",
            (now, now, owner, now),
        ).fetchall()
        for row in candidates:
            cur = self.conn.execute(
                "UPDATE batches SET lease_owner = ?, lease_until = ? WHERE id = ? "
                "AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
                (owner, now + lease_s, row["id"], owner, now),
            )
            if cur.rowcount == 1:
                return dict(row)
        return None

    def renew(self, batch_id: str, owner: str, lease_s: float) -> str | None:
        """Extend the lease; the batch's status now, or None when the lease was lost."""
        cur = self.conn.execute(
            "UPDATE batches SET lease_until = ? WHERE id = ? AND lease_owner = ?",
            (time.time() + lease_s, batch_id, owner),
        )
        if cur.rowcount != 1:
            return None
        row = self.conn.execute("SELECT status FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return None if row is None else str(row["status"])

    def pending(self, batch_id: str, limit: int) -> list[BatchLine]:
        rows = self.conn.execute(
            "SELECT line, custom_id, body FROM batch_lines WHERE batch_id = ? "
            "AND status = 'pending' ORDER BY line LIMIT ?",
            (batch_id, limit),
        )
        return [BatchLine(r["line"], r["custom_id"], orjson.loads(r["body"])) for r in rows]

    def record(
        self,
        batch_id: str,
        line: int,
        *,
        ok: bool,
        status_code: int,
        request_id: str,
        response: dict[str, Any],
        cost_nanos: int | None,
        baseline_nanos: int | None,
    ) -> bool:
        """A line's result, written once: False when the line already had one."""
        cur = self.conn.execute(
            "UPDATE batch_lines SET status = ?, status_code = ?, request_id = ?, response = ?, "
            "cost_nanos = ?, baseline_nanos = ? "
            "WHERE batch_id = ? AND line = ? AND status = 'pending'",
            ("done" if ok else "failed", status_code, request_id,
             orjson.dumps(response).decode(), cost_nanos, baseline_nanos, batch_id, line),
        )  # fmt: skip
        return cur.rowcount == 1

    def finalize(self, batch_id: str, owner: str, status: str) -> None:
        """Write the output and error files and end the batch as `status` (completed, …)."""
        row = self.conn.execute(
            "SELECT tenant, status FROM batches WHERE id = ? AND lease_owner = ?",
            (batch_id, owner),
        ).fetchone()
        if row is None or row["status"] in FINAL:
            return
        now = time.time()
        self.conn.execute(
            "UPDATE batches SET status = 'finalizing', finalizing_at = COALESCE(finalizing_at, ?) "
            "WHERE id = ?",
            (now, batch_id),
        )
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        rows = self.conn.execute(
            "SELECT line, custom_id, status, status_code, request_id, response FROM batch_lines "
            "WHERE batch_id = ? AND status <> 'pending' ORDER BY line",
            (batch_id,),
        )
        for r in rows:
            response = orjson.loads(r["response"]) if r["response"] else None
            entry: dict[str, Any] = {"id": f"batch_req_{batch_id[6:]}_{r['line']}",
                                     "custom_id": r["custom_id"]}  # fmt: skip
            if r["request_id"] is None:  # refused before it ran: an invalid line
                entry["response"] = None
                entry["error"] = response
                errors.append(entry)
                continue
            entry["response"] = {
                "status_code": r["status_code"],
                "request_id": r["request_id"],
                "body": response,
            }
            entry["error"] = None
            (output if r["status"] == "done" else errors).append(entry)
        tenant = row["tenant"]
        with self.conn.transaction():
            out_id = err_id = None
            if output:
                out_id = self.add_file(tenant, "batch_output", f"{batch_id}_output.jsonl",
                                       _jsonl(output))["id"]  # fmt: skip
            if errors:
                err_id = self.add_file(tenant, "batch_output", f"{batch_id}_error.jsonl",
                                       _jsonl(errors))["id"]  # fmt: skip
            stamp = {"completed": "completed_at", "cancelled": "cancelled_at",
                     "expired": "expired_at", "failed": "failed_at"}[status]  # fmt: skip
            self.conn.execute(
                f"UPDATE batches SET status = ?, {stamp} = ?, output_file_id = ?, "
                "error_file_id = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                (status, now, out_id, err_id, batch_id),
            )

    def release(self, batch_id: str, owner: str) -> None:
        self.conn.execute(
            "UPDATE batches SET lease_owner = NULL, lease_until = NULL "
            "WHERE id = ? AND lease_owner = ?",
            (batch_id, owner),
        )


def _file(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "file",
        "bytes": int(row["bytes"]),
        "created_at": int(row["created_at"]),
        "filename": row["filename"],
        "purpose": row["purpose"],
        "status": "processed",
        "status_details": None,
    }


def _jsonl(entries: list[dict[str, Any]]) -> str:
    return "".join(orjson.dumps(e).decode() + "\n" for e in entries)
