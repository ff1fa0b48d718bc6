"""The supervisor's view of one worker process of `run --workers N`, and the OS facts a worker
needs: a shared proxy port (SO_REUSEPORT, a port-0 port resolved once) and dying with its
parent."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from dataclasses import dataclass, field

from m2mgate.listen_address import ListenAddress


class WorkersFailed(Exception):
    """The workers could not start (each says why on stderr)."""


@dataclass
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    admin: str | None = None  # "127.0.0.1:port" once the worker has reported
    # The worker's report (worker_report.py): its admin address, or None if it exited first.
    reported: asyncio.Task[str | None] | None = field(default=None, repr=False)
    restarts: int = 0
    backoff: float = 1.0
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


def resolve_listen(address: ListenAddress) -> tuple[ListenAddress, socket.socket]:
    """Bind (not listen) the proxy address with SO_REUSEPORT to learn a port-0 port. The
    socket is held until the workers have bound the same port, then closed."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address.host, address.port))
    except OSError:
        sock.close()  # a port in use: the caller reports it, nothing is left open
        raise
    return ListenAddress(address.host, int(sock.getsockname()[1])), sock


def die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies, even by SIGKILL, so no
    orphaned worker keeps serving (or holding the port) on its own. Linux only."""
    if sys.platform == "linux":
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
