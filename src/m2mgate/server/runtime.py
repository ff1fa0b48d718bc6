"""One config version, as the request path uses it; swapped atomically on reload.

A request pins the runtime current when it starts and finishes under it, even if a reload
swaps in a new one meanwhile. A retired runtime reports when its last request has left, so the
resources only it used (an upstream pool) can be closed without cutting anyone off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from m2mgate.config.compiling import Settings
from m2mgate.decision import Gatekeeper
from m2mgate.proxy.forwarder import UpstreamForwarder


@dataclass(eq=False)
class Runtime:
    settings: Settings
    gatekeeper: Gatekeeper
    forwarder: UpstreamForwarder
    in_flight: int = 0
    is_retired: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.is_retired and self.in_flight == 0:
            self.drained.set()

    def retire(self) -> None:
        self.is_retired = True
        if self.in_flight == 0:
            self.drained.set()
