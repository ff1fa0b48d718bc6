"""The framing state of a connection's request messages, driven without a socket."""

from __future__ import annotations

from m2mgate.server.http1_framing import MessageFraming, Reading
from tests.unit.server.limits import LIMITS


def test_a_counted_body_splits_off_what_follows_it():
    framing = MessageFraming(LIMITS)
    framing.begin()
    framing.head_complete(5)
    assert framing.reading is Reading.BODY
    assert framing.count_body(b"abc") == (b"abc", b"")
    assert framing.count_body(b"deGET /") == (b"de", b"GET /")
    assert framing.body_left == 0


def test_after_a_message_that_closes_nothing_more_is_read_as_a_request():
    framing = MessageFraming(LIMITS)
    framing.begin()
    framing.head_complete(None)
    framing.complete(keep_alive=True)
    assert framing.reading is Reading.WAITING
    assert not framing.is_past_closing_request
    framing.begin()
    framing.complete(keep_alive=False)
    assert framing.is_past_closing_request


def test_the_head_cap_covers_the_request_line_and_every_field_line():
    assert MessageFraming(LIMITS).max_head_bytes == 8190 + 100 * (16384 + 2)
