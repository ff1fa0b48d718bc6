"""What the proxy handler needs of one config version: the runtime a request pins.

The handler pins the current runtime when a request starts (`enter`) and releases it when the
request ends (`leave`), so a request finishes under the config it started with, whatever reloads.
The concrete runtime is built from a compiled config by the composition root
(`m2mgate.app.runtimes.Runtime`); the listener side names only this shape, so it never imports
config.
"""

from __future__ import annotations

from typing import Protocol

from m2mgate.decision import Gatekeeper
from m2mgate.proxy.forward_rules import ForwardRules
from m2mgate.proxy.forwarder import UpstreamForwarder
from m2mgate.server.limits import BodyLimits


class ExchangeSettings(Protocol):
    """The per-config facts the handler reads while forwarding."""

    @property
    def forward(self) -> ForwardRules: ...

    @property
    def body_limits(self) -> BodyLimits: ...


class Runtime(Protocol):
    @property
    def settings(self) -> ExchangeSettings: ...

    @property
    def gatekeeper(self) -> Gatekeeper: ...

    @property
    def forwarder(self) -> UpstreamForwarder: ...

    def enter(self) -> None: ...

    def leave(self) -> None: ...
