"""In-process stand-ins for a backend: always ready, never loaded; subclasses say how to answer."""

from __future__ import annotations


class IdleUpstream:
    """The lifecycle and load half of the Backend protocol, for fakes that only answer."""

    kind = "upstream"
    name = "fake"

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def ready(self) -> bool:
        return True

    def load(self) -> int:
        return 0

    def saturated(self) -> bool:
        return False
