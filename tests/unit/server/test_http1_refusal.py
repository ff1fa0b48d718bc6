"""What a refusal does, decided from the requests on the connection, and how it is framed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httptools
import pytest

from m2mgate.server.http1_framing import MessageFraming
from m2mgate.server.http1_head_reader import HeadReader, Refused
from m2mgate.server.http1_refusal import (
    Refusing,
    oversized_is_head,
    parse_error,
    refused_is_head,
    refusing,
)
from tests.unit.server.limits import LIMITS


def request(*, finished: bool = False, head_sent: bool = False) -> Any:
    return SimpleNamespace(response=SimpleNamespace(finished=finished, head_sent=head_sent))


def test_with_no_request_being_answered_the_refused_one_is_answered():
    assert refusing(None, None) is Refusing.ANSWER
    assert refusing(None, request()) is Refusing.ANSWER


def test_a_body_going_bad_after_its_response_only_closes():
    assert refusing(None, request(finished=True)) is Refusing.CLOSE


def test_the_body_of_the_request_being_answered_is_refused_unless_its_response_started():
    active = request()
    assert refusing(active, active) is Refusing.REFUSE_BODY
    started = request(head_sent=True)
    assert refusing(started, started) is Refusing.ABORT


@pytest.mark.parametrize("parsing", [None, request()])
def test_a_later_request_is_refused_after_the_current_one(parsing):
    assert refusing(request(), parsing) is Refusing.AFTER_CURRENT


def test_a_callbacks_refusal_names_the_status_else_llhttps_error():
    error = httptools.HttpParserError("bad")
    assert parse_error(error, Refused(431, "header_fields_too_large")) == (
        431,
        "header_fields_too_large",
    )
    assert parse_error(error, None) == (400, "HttpParserError")


class Parser:
    def __init__(self, method: bytes) -> None:
        self.method = method

    def get_method(self) -> bytes:
        return self.method


def test_a_refused_request_is_head_only_when_it_began_as_one():
    framing, head = MessageFraming(LIMITS), HeadReader(LIMITS)
    parser: Any = Parser(b"HEAD")
    assert not refused_is_head(framing, head, parser)  # no request begun
    framing.begin()
    assert refused_is_head(framing, head, parser)  # its method was read
    framing.method_read = False  # the method itself was refused: the field is stale
    assert not refused_is_head(framing, head, parser)
    head.add_url(b"/", b"GET")
    assert not refused_is_head(framing, head, parser)  # on_url knew it


def test_an_oversized_head_not_yet_begun_is_head_when_its_bytes_say_so():
    framing, head = MessageFraming(LIMITS), HeadReader(LIMITS)
    parser: Any = Parser(b"GET")
    assert oversized_is_head(framing, head, parser, b"HEAD / HTTP/1.1\r\n")
    assert not oversized_is_head(framing, head, parser, b"GET / HTTP/1.1\r\n")
