"""Routing rules the autopilot owns: one per task it promoted a student for.

`thrifty autopilot` writes ``$THRIFTY_HOME/autopilot/rules.json``; each entry sends the `auto`
requests of one task (requests sharing a system prompt, optionally of one tenant) to the student
it promoted, and nothing else changes: `local` stays what it was for everyone. The router puts
these rules before the configured ones (`thrifty route explain` shows them as
``rule:autopilot:TASK``) and rereads the file when it changes, looking at most once a second and
only for `auto` requests. No file: no rules, and nothing to do per request but that look.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from thrifty.config import Conditions, RuleSettings

logger = logging.getLogger(__name__)

RULES_FILE = Path("autopilot") / "rules.json"
_CHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class Promotion:
    """A task's traffic goes to `model` (a local student) since `since`, by autopilot run `run`."""

    task: str
    model: str
    run: str
    since: float
    tenant: str | None = None


def rules_path(home: Path) -> Path:
    return home / RULES_FILE


def read_promotions(home: Path) -> list[Promotion]:
    """The promotions in force; [] when there is no file (or it cannot be read: logged)."""
    path = rules_path(home)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        logger.warning("cannot read the autopilot's rules %s: %s", path, exc)
        return []
    out = []
    for entry in raw.get("promotions", []) if isinstance(raw, dict) else []:
        try:
            out.append(
                Promotion(
                    str(entry["task"]),
                    str(entry["model"]),
                    str(entry["run"]),
                    float(entry["since"]),
                    entry.get("tenant"),
                )
            )
        except (KeyError, TypeError, ValueError):
            logger.warning("skipping a malformed autopilot rule in %s: %r", path, entry)
    return out


def write_promotions(home: Path, promotions: list[Promotion]) -> None:
    """Replace the file at once (readers never see half of it)."""
    path = rules_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    data: dict[str, Any] = {"promotions": [asdict(p) for p in promotions]}
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def rule_name(task: str, tenant: str | None = None) -> str:
    return f"autopilot:{task}" + (f"@{tenant}" if tenant else "")


def promotion_rule(promotion: Promotion) -> RuleSettings:
    when = Conditions(
        task=[promotion.task], tenant=[promotion.tenant] if promotion.tenant else None
    )
    return RuleSettings(
        name=rule_name(promotion.task, promotion.tenant), when=when, target=promotion.model
    )


class PromotedRules:
    """The autopilot's rules for one router, kept in step with the file."""

    def __init__(
        self,
        home: Path,
        known: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = rules_path(home)
        self.home = home
        self.known = known  # a model name the registry resolves
        self.clock = clock
        self.rules: list[RuleSettings] = []
        self._stamp: tuple[int, int] | None = None
        self._next = 0.0
        self._pending = False  # a promotion named a model the registry does not know yet
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> bool:
        """Reread the file if it changed (at most once a second); True when the rules did."""
        now = self.clock()
        if not force and now < self._next:
            return False
        self._next = now + _CHECK_S
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._stamp and not self._pending:
            return False
        self._stamp = stamp
        rules, self._pending = [], False
        for promotion in read_promotions(self.home) if stamp is not None else []:
            if self.known(promotion.model):
                rules.append(promotion_rule(promotion))
            else:
                self._pending = True  # `models add` reaches the registry within a second
        changed = [r.model_dump() for r in rules] != [r.model_dump() for r in self.rules]
        self.rules = rules
        return changed
