"""Sending a request body upstream while waiting for the response head.

The body is the caller's async iterator; whatever it raises (a limit, a stall, its sender gone)
ends the exchange with that same exception, and the request is never completed: no terminating
chunk, no last byte of a declared length (#8: a refused body never completes upstream).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from m2mgate.errors import GatewayTimeout
from m2mgate.proxy.upstream import RequestBodyUnfinished
from m2mgate.proxy.upstream_connection import UpstreamConnection
from m2mgate.proxy.upstream_exchange import Exchange


class FramingMismatch(Exception):
    """A body of another length than its declared Content-Length: a bug upstream of the pool
    (the listener delivers exactly the declared count, or fails). Not a gateway answer: the
    exchange fails as a 500 and its connection is closed, never reused."""


async def send_body(
    conn: UpstreamConnection, body: AsyncIterator[bytes], content_length: int | None
) -> None:
    """Stream the body. Chunked (`content_length` None): the terminating chunk is written only
    when the body ended normally; a body that fails raises before it, and the caller closes the
    connection, so a refused or cut body never reaches the upstream as a complete one."""
    sent = 0
    async for chunk in body:
        if conn.closed:
            return  # the exchange ended (early response, failure): nobody reads the rest
        if not chunk:
            continue
        sent += len(chunk)
        if content_length is None:
            conn.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))  # no copy of the chunk
        elif sent > content_length:
            raise FramingMismatch(f"body longer than its Content-Length {content_length}")
        else:
            conn.write(chunk)
        await conn.drain()
    if content_length is None:
        conn.write(b"0\r\n\r\n")
    elif sent != content_length and not conn.closed:
        raise FramingMismatch(f"body of {sent} bytes, Content-Length {content_length}")


async def head_while_sending(
    sender: asyncio.Future[None], exchange: Exchange, seconds: float
) -> None:
    """Wait for the response head; a failing body sender ends the wait with its error. When
    the time runs out while the request body is still being sent, it is the body that is late
    (RequestBodyUnfinished, which the relay answers as the client's 408), not the upstream's
    answer (504): an upstream reads a body before it answers, and blaming it would count the
    client's stall in its error metrics."""
    head = asyncio.ensure_future(exchange.read_head(seconds))
    try:
        await asyncio.wait((sender, head), return_when=asyncio.FIRST_COMPLETED)
        if sender.done() and sender.exception() is not None:
            raise sender.exception()  # type: ignore[misc]  # the body failed first
        if not head.done():
            await asyncio.wait((head,))  # the body is sent: wait for the head as usual
        if isinstance(head.exception(), GatewayTimeout) and not sender.done():
            raise RequestBodyUnfinished(f"the request body was not complete within {seconds:g}s")
        head.result()
    finally:
        if not head.done():
            head.cancel()
        else:
            ignore_result(head)  # its error, if any, was raised above or superseded


def ignore_result(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
