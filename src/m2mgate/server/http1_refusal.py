"""How the listener refuses a request it cannot parse, decided from values: the status and the
error name for the log, whether the refused request was HEAD (its answer then has no body,
RFC 9110 §9.3.2), and what the refusal does to the requests on the connection (`Refusing`).

Plain functions; `report` only files the refusal with the listener's events. The connection
(http1_connection.py) carries the decision out and writes the fixed answer
(request_head.refusal); it is never passed here.
"""

from __future__ import annotations

import enum
import secrets

import httptools

from m2mgate.server.http1_framing import MessageFraming
from m2mgate.server.http1_head_reader import HeadReader, Refused
from m2mgate.server.http1_request import Http1Request
from m2mgate.server.listener_context import ServerEvents


class Refusing(enum.Enum):
    """What a refusal does, given the request being answered and the one being parsed."""

    CLOSE = "close"  # the refused request was answered already: only closing is left
    ANSWER = "answer"  # no request is being answered: the refused one is, then the close
    REFUSE_BODY = "refuse_body"  # the request being answered has a malformed body
    ABORT = "abort"  # the same, but its response has started
    AFTER_CURRENT = "after_current"  # a later, pipelined request is malformed


def refusing(active: Http1Request | None, parsing: Http1Request | None) -> Refusing:
    if active is None:
        if parsing is not None and parsing.response.finished:
            # The body of a request already answered turned bad while it was being dropped:
            # its one response is out (maybe still buffered: close, do not abort), a second
            # would be unsolicited. Only closing is left.
            return Refusing.CLOSE
        return Refusing.ANSWER
    if active is not parsing:
        return Refusing.AFTER_CURRENT  # answer the current one, then close
    return Refusing.ABORT if active.response.head_sent else Refusing.REFUSE_BODY


def parse_error(error: httptools.HttpParserError, stopped: Refused | None) -> tuple[int, str]:
    """The status and error name of a request llhttp could not parse: why a parser callback
    stopped it (httptools wraps what the callback raised), else 400 and llhttp's error."""
    if stopped is not None:
        return stopped.status, stopped.reason
    return 400, type(error).__name__


def refused_is_head(
    framing: MessageFraming, head: HeadReader, parser: httptools.HttpRequestParser
) -> bool:
    """Was the refused request HEAD? Known from on_url; a request refused inside its
    target never got there, but llhttp had read its method by then, unless the method
    itself was what it refused (its method field then still holds an earlier request's)."""
    if not framing.in_message:
        return False  # no request begun: nothing is known of one
    if head.url:
        return head.is_head
    return framing.method_read and parser.get_method() == b"HEAD"


def oversized_is_head(
    framing: MessageFraming, head: HeadReader, parser: httptools.HttpRequestParser, data: bytes
) -> bool:
    """Is a request whose head grew too large HEAD? It is refused before llhttp sees `data`: a
    request llhttp has not begun is HEAD when these bytes begin it so (its refusal then has no
    body, RFC 9110 §9.3.2)."""
    if framing.in_message:
        return refused_is_head(framing, head, parser)
    return data.startswith(b"HEAD ")


def report(events: ServerEvents, status: int, error: str) -> str:
    """A refused request no handler will log: reported once, under a new request id."""
    request_id = secrets.token_hex(16)
    events.http_error(status, error, request_id)
    return request_id
