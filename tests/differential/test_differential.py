"""Differential conformance: the gateway, an independent reference parser and the upstream must
read every client byte stream alike (README, "How it is attacked in the tests"; THREAT_MODEL
T60). The streams come from streams.py, the rules from oracle.py.

CI runs the bounded `ci` hypothesis profile; `scripts/fuzz` runs the `fuzz` profile.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.differential.harness import DifferentialTarget
from tests.differential.oracle import assert_hops_agree
from tests.differential.streams import streams

# Under the bounded `ci` profile a failure is reported as found, without shrinking: shrinking
# each distinct rule's failure takes minutes on a 2-core machine (a ~200-byte stream, 25 ms per
# exchange), and the known holes have their minimal streams in test_known_holes.py. Under the
# `fuzz` profile (scripts/fuzz) every distinct rule's failure is shrunk and reported.
_BOUNDED = os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci"
DIFFERENTIAL = settings(
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    deadline=None,  # each exchange is bounded by the harness itself (harness._EXCHANGE_SECONDS)
    phases=(Phase.explicit, Phase.reuse, Phase.generate) if _BOUNDED else tuple(Phase),
    report_multiple_bugs=not _BOUNDED,
)


@DIFFERENTIAL
@given(data=st.data())
def test_the_gateway_the_reference_and_the_upstream_read_every_stream_alike(
    target: DifferentialTarget, data: st.DataObject
) -> None:
    stream = data.draw(streams(target.credentials), label="stream")
    assert_hops_agree(target, stream.variant, list(stream.chunks), stream.pause_seconds)


def test_a_plain_exchange_passes_every_rule(target: DifferentialTarget) -> None:
    """The rules mean something only if an ordinary exchange satisfies all of them."""
    token = target.credentials.valid
    requests = [
        b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\n\r\n",
        f"POST /api/data HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n"
        "Content-Length: 5\r\n\r\nhello".encode(),
        f"PUT /api/data HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".encode(),
    ]
    for variant in ("default", "passthrough"):
        exchange = assert_hops_agree(target, variant, requests)
        assert [r.status for r in exchange.client.responses] == [200, 200, 200]
        assert len(exchange.forwarded) == 3


def test_the_gateway_may_be_stricter_than_the_reference(target: DifferentialTarget) -> None:
    """What h11 accepts and llhttp refuses (obs-fold, a list-valued Content-Length, bare LF
    line ends): a refusal that forwards nothing is no disagreement."""
    for stream in (
        b"GET /public/x HTTP/1.1\r\nHost: gw.test\r\nX-Folded: a\r\n b\r\n\r\n",
        b"POST /public/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"GET /public/x HTTP/1.1\nHost: gw.test\n\n",
    ):
        exchange = assert_hops_agree(target, "default", [stream])
        assert exchange.reference.complete and not exchange.forwarded
        assert [r.status for r in exchange.client.responses] == [400]
