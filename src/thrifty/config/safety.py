"""Privacy, authentication and moderation."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from thrifty.config._base import _Section


class PrivacySettings(_Section):
    detect: list[str] | None = Field(None, description="PII kinds to detect; default: all.")
    on_pii: Literal["local", "mask", "reject", "allow"] = Field(
        "local",
        description="Personal data in a request bound for a cloud: answer locally (never the "
        "cloud, not even as a fallback), mask it, reject the request, or allow it.",
    )
    unscannable: Literal["local", "allow"] = Field(
        "local",
        description="Content no text scan can clear (image, audio and file parts, base64 "
        "blobs) in a request bound for a cloud: keep the request local, or let it go.",
    )
    scan_timeout_ms: float = Field(
        250.0,
        description="Longest a request's personal-data scan may take; past it the request is "
        "kept off clouds (as when the scan fails).",
        gt=0,
    )


class AuthSettings(_Section):
    """API keys (`thrifty keys create`) and the audit log."""

    mode: Literal["auto", "required", "off"] = Field(
        "auto",
        description="auto: without keys on a loopback address until the first key is created, "
        "every call needs a key from then on (revoking keys does not reopen it), and no start "
        "on another address before a key exists; required: every call needs a key; off: no "
        "call needs one (admin endpoints still do), refused on a non-loopback address.",
    )
    refresh_s: float = Field(
        2.0,
        description="How often a gateway checks the key store for keys changed by another "
        "process (the CLI); changes made through /admin/keys apply at once.",
        gt=0,
    )
    audit_requests: bool = Field(
        True, description="Append every request's metadata (never its prompt) to the audit log."
    )


ModerationAction = Literal["block", "mask", "flag"]

DEFAULT_SELF_CHECK_PROMPT = (
    "You are a content-safety checker. Reply with one word: UNSAFE if the text asks for or "
    "contains instructions for serious harm (weapons, explosives, drugs, self-harm, sexual content "
    "involving minors), otherwise SAFE."
)


class WordListSettings(_Section):
    """Overrides for one word list, named by its file name without `.txt`."""

    action: ModerationAction | None = Field(
        None,
        description="block (400 content_policy_violation), mask (replace with ***) or flag (let "
        "through, record); unset: the file's `# action:` line, else flag.",
    )
    direction: Literal["input", "output", "both"] | None = Field(
        None,
        description="Scan requests, answers or both; unset: the file's `# direction:` line, "
        "else both.",
    )
    enabled: bool = Field(True, description="false: do not load this list.")


class SelfCheckSettings(_Section):
    """An optional model that judges each request after the word lists (off by default)."""

    enabled: bool = Field(False, description="Ask a model to judge every request's text.")
    model: str = Field("local", description="Model that judges (any name clients may use).")
    action: Literal["block", "flag"] = Field("flag", description="What an UNSAFE verdict does.")
    prompt: str = Field(
        DEFAULT_SELF_CHECK_PROMPT,
        description="System prompt of the check; the model must answer SAFE or UNSAFE.",
    )
    max_chars: int = Field(4000, description="Longest text sent to the check (its tail).", ge=1)
    factory: str | None = Field(
        None,
        description="`module:callable` that builds your own check, called with (settings, "
        "caller, registry); unset: the built-in model check.",
    )


class ModerationSettings(_Section):
    """Word lists and regexes on requests and answers; flagged requests sampled for review."""

    enabled: bool = Field(True, description="Scan requests and answers against the word lists.")
    shipped_lists: bool = Field(
        True, description="Load the lists shipped in thrifty/gateway/wordlists/."
    )
    files: list[Path] = Field(
        default_factory=list,
        description="More word-list files: one term a line, `re:` before a regex, `#` comments, "
        "`# action:` and `# direction:` header lines; the file name names the list.",
    )
    lists: dict[str, WordListSettings] = Field(
        default_factory=dict, description="Per-list overrides, by list name."
    )
    mask_with: str = Field("***", description="What a masked match is replaced with.")
    max_regex_chars: int = Field(
        64,
        description="Longest text a `re:` entry is taken to match: streamed answers hold back "
        "that many characters so a match split across chunks is still caught.",
        ge=1,
    )
    review_sample: float = Field(
        0.05,
        description="Share of flagged requests copied to the review queue (thrifty review).",
        ge=0,
        le=1,
    )
    review_actions: list[ModerationAction] = Field(
        default_factory=lambda: list[ModerationAction](["flag"]),
        description="Outcomes sampled for review (flag; add block or mask to audit those too).",
    )
    review_chars: int = Field(2000, description="Longest excerpt kept with a review item.", ge=1)
    self_check: SelfCheckSettings = Field(default_factory=SelfCheckSettings)
