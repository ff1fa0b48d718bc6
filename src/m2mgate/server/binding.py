"""Binding a listener, and saying which one could not bind and why.

`m2mgate run` binds up to two addresses (`listen`, `admin_listen`). When one is taken, not on
this host, or not permitted, the operator needs one line naming the config key, the address
and the cause, never a traceback or a generic "cannot listen" that leaves them guessing which.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator


class CannotListen(Exception):
    """A listener could not bind: `cannot listen on ADDRESS (KEY): cause`."""

    def __init__(self, key: str, address: object, error: OSError) -> None:
        self.key = key
        self.address = address
        super().__init__(f"cannot listen on {address} ({key}): {_cause(error)}")


@contextlib.contextmanager
def binding(key: str, address: object) -> Iterator[None]:
    """Any OSError raised inside becomes a CannotListen naming `key` and `address` (anything
    that prints as one: config's ListenAddress, which the server does not import)."""
    try:
        yield
    except CannotListen:
        raise
    except OSError as error:
        raise CannotListen(key, address, error) from error


def _cause(error: OSError) -> str:
    """The system's words for the errno (asyncio and uvloop wrap it in their own sentence,
    which repeats the address); a resolver error keeps its own message."""
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        text = error.strerror or str(error)
    else:
        text = os.strerror(error.errno)
    return text[:1].lower() + text[1:]
