"""The gateway's two listeners: the proxy (our HTTP/1.1 server) and admin (aiohttp).

Binding is where a start can fail (a port in use, an address not on this host): each bind
runs under `binding(...)`, which turns the OSError into one CannotListen naming the address.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from m2mgate.listen_address import ListenAddress
from m2mgate.server.binding import binding
from m2mgate.server.http1_server import Handler, HttpServer, ServerEvents
from m2mgate.server.limits import ConnectionLimits


def proxy_server(handler: Handler, limits: ConnectionLimits, events: ServerEvents) -> HttpServer:
    return HttpServer(handler, limits, events)


class Listeners:
    def __init__(self) -> None:
        self.proxy: HttpServer | None = None
        self._admin: web.AppRunner | None = None

    async def bind_admin(self, app: web.Application, address: ListenAddress) -> None:
        self._admin = web.AppRunner(app, access_log=None)
        await self._admin.setup()
        with binding("admin_listen", address):
            site = web.TCPSite(self._admin, address.host, address.port, reuse_address=True)
            await site.start()

    async def bind_proxy(
        self, server: HttpServer, address: ListenAddress, *, reuse_port: bool
    ) -> None:
        self.proxy = server
        with binding("listen", address):
            await server.listen(address.host, address.port, reuse_port=reuse_port)

    async def close(self) -> None:
        """Close whatever is open; logs nothing."""
        if self.proxy is not None and self.proxy.is_listening:
            await self.proxy.shutdown(0)  # a start cut short: nothing was served
        if self._admin is not None:
            await self._admin.cleanup()
            self._admin = None

    @property
    def proxy_address(self) -> tuple[str, int]:
        address = self.proxy.address if self.proxy is not None else None
        if address is None:
            raise RuntimeError("not listening")
        return address

    @property
    def admin_address(self) -> tuple[str, int]:
        runner = self._admin
        if runner is None or not runner.addresses:
            raise RuntimeError("not listening")
        address: Any = runner.addresses[0]
        return str(address[0]), int(address[1])

    @property
    def is_accepting(self) -> bool:
        return self.proxy is not None and self.proxy.is_listening

    @property
    def open_connections(self) -> int:
        return self.proxy.open_connections if self.proxy is not None else 0


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
