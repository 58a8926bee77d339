"""README.md's code, as the test runs it: fenced shell and Python blocks, and `$ ` transcripts.

A shell block is split into commands (one a line; a trailing backslash continues it; `#`
comment lines are skipped). An unlabelled block whose lines start with `$ ` is a transcript: the
command, then the lines it prints. YAML blocks are configuration, checked against `Settings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Snippet:
    kind: str  # shell | python | yaml
    section: str  # the heading above it
    line: int  # where it starts in README.md (1-based)
    text: str  # one shell command, or a whole Python / YAML block
    expect: tuple[str, ...] = field(default=())  # a transcript's printed lines

    @property
    def name(self) -> str:
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        return f"README.md:{self.line} [{self.section}] {first[:70]}"


def _commands(block: list[str], start: int) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    begun = start
    for offset, raw in enumerate(block):
        line = raw.rstrip()
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            begun = start + offset
        if line.endswith("\\"):
            pending.append(line[:-1].rstrip())
            continue
        pending.append(line)
        out.append((begun, " ".join(p.strip() for p in pending)))
        pending = []
    return out


def extract(readme: Path) -> list[Snippet]:
    snippets: list[Snippet] = []
    section = "top"
    lines = readme.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            section = line.lstrip("#").strip()
        match = FENCE.match(line)
        if not match:
            i += 1
            continue
        lang = match.group(1).lower()
        end = i + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        block, first = lines[i + 1 : end], i + 2  # README line numbers are 1-based
        if lang in SHELL:
            for at, command in _commands(block, first):
                snippets.append(Snippet("shell", section, at, command))
        elif lang == "python":
            snippets.append(Snippet("python", section, first, "\n".join(block)))
        elif lang in ("yaml", "yml"):
            snippets.append(Snippet("yaml", section, first, "\n".join(block)))
        elif not lang and any(b.startswith("$ ") for b in block):
            snippets.extend(_transcript(block, first, section))
        i = end + 1
    return snippets


def _transcript(block: list[str], first: int, section: str) -> list[Snippet]:
    out: list[Snippet] = []
    command: tuple[int, str] | None = None
    printed: list[str] = []
    for offset, line in enumerate([*block, "$ "]):
        if line.startswith("$ "):
            if command is not None and command[1]:
                out.append(Snippet("shell", section, command[0], command[1], tuple(printed)))
            command, printed = (first + offset, line[2:].strip()), []
        elif line.strip():
            printed.append(line.strip())
    return out
