"""The Batch API (`/v1/files`, `/v1/batches`): limits and when batches run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from thrifty.config._base import _Section


class BatchSettings(_Section):
    """OpenAI's Batch API: uploaded JSONL files run through the gateway, off the hot path."""

    enabled: bool = Field(True, description="Serve /v1/files and /v1/batches and run batches.")
    clock: Literal["window", "now"] = Field(
        "window",
        description="window: a batch bound for the cloud waits for the cheapest price window "
        "inside its completion window; now: every batch starts at once (tests, demos).",
    )
    max_file_bytes: int = Field(
        50_000_000, description="Largest file /v1/files accepts, in bytes.", ge=1
    )
    max_lines: int = Field(50_000, description="Most requests one batch file may hold.", ge=1)
    concurrency: int = Field(
        4,
        description="Requests of one batch in flight at once (on the local model: never more "
        "than its idle slots, so interactive requests go first).",
        ge=1,
    )
    lease_s: float = Field(
        30,
        description="How long a replica holds a batch without renewing; a killed replica's "
        "batches are taken over after it.",
        gt=0,
    )
    poll_s: float = Field(1.0, description="How often the runner looks for work.", gt=0)
