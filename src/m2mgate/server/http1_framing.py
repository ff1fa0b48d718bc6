"""Where a client connection is in its byte stream: which part of a request message it reads
(`Reading`), how much of the head has arrived, how much of a body llhttp does not parse is still
to come, and whether anything after the current message may be read as HTTP/1.1 at all.

A value, one per connection, updated by the connection's parser callbacks (http1_connection.py);
no I/O, and no reference back to the connection. The connection reads and writes its fields
directly on the hot path; the methods are the transitions between messages.
"""

from __future__ import annotations

import enum

from m2mgate.server.limits import ConnectionLimits


class Reading(enum.Enum):
    """What the connection is reading."""

    WAITING = "waiting"  # between requests
    HEAD = "head"  # a request head
    BODY = "body"  # a request body (and a chunked body's trailer section)


# Enum members read per request are bound to module names: on CPython 3.11 a member read
# through its class costs about four times a global (85 ns against 20, measured).
_READING_BODY = Reading.BODY
_READING_HEAD = Reading.HEAD
_READING_WAITING = Reading.WAITING


class MessageFraming:
    """The framing state of one connection's current request message."""

    __slots__ = (
        "body_left",
        "head_bytes",
        "in_message",
        "max_head_bytes",
        "method_read",
        "parser_closed",
        "reading",
        "upgraded",
    )  # fmt: skip

    def __init__(self, limits: ConnectionLimits) -> None:
        self.reading = _READING_WAITING
        self.body_left = 0  # of a Content-Length request body, bytes still to come
        # An Upgrade request was read: nothing after it (and after its body) is parsed; the
        # connection closes once it is answered.
        self.upgraded = False
        self.head_bytes = 0
        self.max_head_bytes = limits.max_url_bytes + limits.max_headers * (
            limits.max_header_bytes + 2
        )
        self.method_read = True  # llhttp read this request's method (not refused inside it)
        self.in_message = False  # llhttp began a request it has not completed
        # llhttp completed a request that ends the connection (`Connection: close`, HTTP/1.0,
        # or a close option in a chunked body's trailer): it parses nothing after it.
        self.parser_closed = False

    def begin(self) -> None:
        """llhttp began a request message."""
        self.in_message = True
        self.reading = _READING_HEAD

    def head_complete(self, content_length: int | None) -> None:
        """Its head is read; `content_length` is the body the head declared, if any."""
        self.reading = _READING_BODY
        self.body_left = content_length or 0  # on_body counts down what llhttp parses
        self.head_bytes = 0

    def complete(self, keep_alive: bool) -> None:
        """The message ended; `keep_alive` is llhttp's reading of whether more follow."""
        self.reading = _READING_WAITING
        self.in_message = False
        if not keep_alive:
            # Threat (#8): llhttp parses nothing after this request (a close option, maybe in
            # a chunked trailer), and neither does the gateway: what follows is not refused
            # as a parse error (RFC 9112 §9.6; HttpConnection._message_complete says why).
            self.parser_closed = True

    @property
    def is_past_closing_request(self) -> bool:
        """Are the bytes arriving now after a request that ended the connection?"""
        return self.parser_closed and not self.in_message

    def count_body(self, data: bytes) -> tuple[bytes, bytes]:
        """Split off the part of `data` that belongs to the body being counted (not parsed);
        the rest is what follows the body."""
        left = self.body_left
        body, rest = (data, b"") if len(data) <= left else (data[:left], data[left:])
        self.body_left = left - len(body)
        return body, rest
