"""Hypothesis strategies for HTTP/1.1 request byte streams: valid, lenient and hostile.

A stream is 1-3 pipelined requests (plus, sometimes, trailing bytes), split at arbitrary byte
boundaries into writes with a tiny pause between them, so the gateway's parser sees it arrive
in pieces; the cut points are drawn uniformly or at the places where a split matters (the end
of a head, a chunk boundary). Each request draws, independently:
- the request line: method (CONNECT and TRACE too), route (public, protected, the upstream's
  `/early`, `/switch` and `/trailers`), version (1.1, 1.0, and `HTTP/2.0`, `HTTP/0.9`,
  `HTTP/1.2`, none at all), sometimes odd bytes in the query, two spaces between the parts;
- Host (normal, missing, duplicate, invalid, empty, with port), Authorization (none, valid,
  lacking the scope, forged, garbage, two), identity headers in every spelling (`X_Client_Id`,
  `x-client-id`, `X-SCOPES`, a space before the colon), forwarded-family and override headers,
  Connection / Upgrade, Expect: 100-continue, obs-fold, a bare LF or CR for one line end;
- framing: none, Content-Length (exact, wrong, duplicate, list-valued, odd spellings),
  chunked (extensions, leading zeros, upper-case hex, bad sizes, overflow, missing CRLF, a chunk
  that turns bad mid-stream, trailers carrying Authorization / Host / identity headers), CL+TE,
  odd Transfer-Encodings (`chunked, identity`, ` chunked`, `Chunked`, `xchunked`, twice);
- a body that is itself a request (`GET /api/admin/... X-Client-Id: admin`), for smuggling.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.differential.harness import VARIANTS, Credentials

SMUGGLED = (
    b"GET /api/admin/users HTTP/1.1\r\nHost: gw.test\r\n"
    b"X-Client-Id: admin\r\nX-Scopes: admin\r\n\r\n"
)

METHODS = ["GET", "GET", "GET", "POST", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "CONNECT",
           "TRACE"]  # fmt: skip
TARGETS = [
    "/public/x", "/api/data", "/public/a/b?q=1&r=%41", "/api/data?page=2", "/public/early",
    "/api/data/early", "/public/switch", "/api/admin/users", "*", "http://gw.test/public/x",
    "/public/../api/data", "/public/trailers", "/api/data/trailers",
]  # fmt: skip
VALID_VERSIONS = ["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]
VERSIONS = ["HTTP/1.1"] * 4 + ["HTTP/1.0"] * 2 + ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2", ""]
VALID_HOSTS = ["gw.test", "gw.test", "gw.test:8080", "[::1]:80", ""]
HOSTS = ["gw.test"] * 3 + [
    "missing", "duplicate", "evil.example/a b?c@d", "", "gw.test:8080", "[::1]:80",
    "space-before-colon",
]  # fmt: skip
AUTHS = [None, None, "valid", "valid", "valid", "no_scope", "forged", "garbage", "two"]
IDENTITY_SPELLINGS = [
    ("X-Client-Id", "admin"), ("x-client-id", "admin"), ("X_Client_Id", "admin"),
    ("X-SCOPES", "admin"), ("X_Scopes", "admin"), ("x_scopes", "admin"), ("X-Roles", "admin"),
    ("X-Issuer", "https://evil.example"), ("X-Subject", "root"), ("X-Tenant", "t-1"),
    ("X-Client_Id", "admin"), ("X-Client-Id ", "admin"),
]  # fmt: skip
FORWARDED = [
    ("Forwarded", "for=10.0.0.1;proto=https;host=evil.example"), ("X-Real-IP", "10.0.0.1"),
    ("True-Client-IP", "10.0.0.1"), ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Prefix", "/admin"), ("X-Forwarded-For", "10.0.0.1"),
    ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.example"),
    ("X_Forwarded_For", "10.0.0.1"), ("X-Original-URL", "/api/admin/users"),
    ("X-HTTP-Method-Override", "DELETE"),
]  # fmt: skip
CONNECTIONS = [None] * 4 + [
    "keep-alive", "close", "Upgrade", "Upgrade, keep-alive", "close, X-Forwarded-For",
    "X-Client-Id", "TE", "X-Custom",
]  # fmt: skip
VALID_FRAMINGS = ["none", "cl", "cl", "chunked", "chunked", "cl+te", "two-cl-same", "cl-list"]
FRAMINGS = ["none"] * 3 + ["cl"] * 3 + ["chunked"] * 3 + [
    "cl-wrong", "cl+te", "two-cl-same", "two-cl-diff", "cl-list", "cl-odd", "te-odd",
    "te-twice",
]  # fmt: skip
TE_ODD = [
    "Chunked", " chunked", "chunked, identity", "identity, chunked", "xchunked", "CHUNKED",
    "gzip, chunked", "chunked;q=1", "identity", "chunked\t",
]  # fmt: skip
CL_ODD = ["+{n}", " {n}", "0{n}", "{n} ", "0x{n:x}", "-1", "{n}.0", "99999999999999999999"]
SIZE_SPELLINGS = ["{n:x}"] * 4 + [
    "{n:X}", "000{n:x}", "{n:x};ext=1", '{n:x};a="b c"', "{n:x} ", " {n:x}", "0x{n:x}",
]  # fmt: skip
VALID_SIZE_SPELLINGS = ["{n:x}"] * 4 + ["{n:X}", "000{n:x}", "{n:x};ext=1", '{n:x};a="b c"']
BAD_SIZES = ["zz", "-1", "ffffffffffffffffffffff", "5 5", "", "g"]
CHUNK_ENDS = ["\r\n"] * 6 + ["", "\n", "XX", "\r"]
LAST_CHUNKS = ["0", "0", "000", "0;ext=1"]
# Any byte but CR, LF and SP, as latin-1 text: controls, DEL, obs-text, quotes.
ODD_TEXT = st.text(
    alphabet=st.characters(max_codepoint=0xFF, exclude_characters="\r\n "), min_size=1, max_size=4
)
TAILS = [b""] * 6 + [b"\r\n", b"G", b"0\r\n\r\n", b"\x00", SMUGGLED[:30], SMUGGLED]


def trailer_menu(credentials: Credentials) -> list[tuple[str, str]]:
    return [
        ("X-Trailer", "1"), ("Authorization", f"Bearer {credentials.valid}"),
        ("Authorization", "Bearer evil"), ("Host", "evil.example"), ("X-Client-Id", "admin"),
        ("X-Scopes", "admin"), ("X-Forwarded-For", "10.0.0.1"), ("Content-Length", "5"),
        ("Transfer-Encoding", "chunked"), ("X-Original-URL", "/api/admin/users"),
        ("Cookie", "session=admin"), ("Connection", "close"),
    ]  # fmt: skip


@dataclass(frozen=True)
class Stream:
    variant: str
    chunks: tuple[bytes, ...]
    pause_seconds: float

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@dataclass(frozen=True)
class _Rendered:
    data: bytes
    cuts: tuple[int, ...]  # offsets inside `data` where a split is interesting


@st.composite
def chunked_body(
    draw: st.DrawFn, payload: bytes, credentials: Credentials, wild: bool
) -> _Rendered:
    parts: list[bytes] = []
    if payload:
        pieces = draw(st.integers(1, min(3, len(payload))))
        step = -(-len(payload) // pieces)
        parts = [payload[i : i + step] for i in range(0, len(payload), step)]
    out = bytearray()
    cuts = []
    for index, part in enumerate(parts):
        cuts.append(len(out))
        if wild and draw(st.integers(0, 7)) == 0:
            size = draw(st.sampled_from(BAD_SIZES))
        else:
            spellings = SIZE_SPELLINGS if wild else VALID_SIZE_SPELLINGS
            size = draw(st.sampled_from(spellings)).format(n=len(part))
        bad_end = wild and draw(st.integers(0, 5)) == 0
        end = draw(st.sampled_from(CHUNK_ENDS)) if bad_end else "\r\n"
        out += size.encode() + b"\r\n" + part + end.encode()
        if wild and index == 0 and draw(st.integers(0, 5)) == 0:
            # A chunk that turns bad mid-stream: what follows is not a chunk.
            cuts.append(len(out))
            out += draw(st.sampled_from([b"zz\r\n", b"0x5\r\nhello\r\n", b"\r\n", b"5\r\nhi"]))
            return _Rendered(bytes(out), tuple(cuts))
    cuts.append(len(out))
    out += draw(st.sampled_from(LAST_CHUNKS)).encode() + b"\r\n"
    for name, value in draw(st.lists(st.sampled_from(trailer_menu(credentials)), max_size=2)):
        out += f"{name}: {value}\r\n".encode()
    out += b"\r\n"
    return _Rendered(bytes(out), tuple(cuts))


@st.composite
def framed_body(
    draw: st.DrawFn, credentials: Credentials, last: bool, wild: bool
) -> tuple[list[str], _Rendered]:
    """The framing header lines and the body bytes, drawn independently enough to disagree."""
    framing = draw(st.sampled_from(FRAMINGS if wild else VALID_FRAMINGS))
    payload = draw(
        st.sampled_from([b"hello", b"", b"a=1&b=2", SMUGGLED, b"0\r\n\r\n" + SMUGGLED])
        | st.binary(max_size=12)
        # Larger than one read: the body arrives over several, past the pause threshold of
        # neither side but through llhttp's and the listener's counting paths.
        | st.just(b"x" * 70_000)
    )
    n = len(payload)
    raw = _Rendered(payload, ())
    if framing == "none":
        return [], _Rendered(b"", ())
    if framing == "cl":
        return [f"Content-Length: {n}"], raw
    if framing == "cl-wrong":
        # Too long a length on the last request leaves the gateway waiting for the body.
        delta = draw(st.sampled_from([-1, -3, 1, 3] if not last else [-1, -3]))
        return [f"Content-Length: {max(0, n + delta)}"], raw
    if framing == "two-cl-same":
        return [f"Content-Length: {n}", f"Content-Length: {n}"], raw
    if framing == "two-cl-diff":
        return [f"Content-Length: {n}", f"Content-Length: {max(0, n - 2)}"], raw
    if framing == "cl-list":
        return [f"Content-Length: {n}, {n}"], raw
    if framing == "cl-odd":
        return ["Content-Length: " + draw(st.sampled_from(CL_ODD)).format(n=n)], raw
    body = draw(chunked_body(payload, credentials, wild))
    if framing == "chunked":
        return ["Transfer-Encoding: chunked"], body
    if framing == "te-odd":
        return ["Transfer-Encoding: " + draw(st.sampled_from(TE_ODD))], body
    if framing == "te-twice":
        return ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], body
    # cl+te: a Content-Length that covers the chunked body, or only its first bytes.
    length = draw(st.sampled_from([len(body.data), min(len(body.data), 5), 0]))
    lines = [f"Content-Length: {length}", "Transfer-Encoding: chunked"]
    return draw(st.permutations(lines)), body


@st.composite
def request_bytes(draw: st.DrawFn, credentials: Credentials, index: int, last: bool) -> _Rendered:
    # Half the requests are well-formed HTTP/1.1 as h11 reads it (the semantic attacks:
    # identity and proxy headers, upgrades, trailers, CL+TE, pipelining); the other half may
    # also break the syntax anywhere. A stream of only the second kind rarely gets past its
    # first request, and desyncs show after one that parses.
    wild = draw(st.booleans())
    method = draw(st.sampled_from(METHODS))
    target = draw(st.sampled_from(TARGETS))
    if wild and draw(st.integers(0, 5)) == 0:
        # The query is forwarded as it came and never routed on: bytes a parser may take
        # that another refuses (obs-text, DEL, quotes, a fragment).
        target += draw(st.sampled_from(["?", "#", "?q=1#"])) + draw(ODD_TEXT)
    version = draw(st.sampled_from(VERSIONS if wild else VALID_VERSIONS))
    lines: list[str] = []
    host = draw(st.sampled_from(HOSTS if wild else VALID_HOSTS))
    if host == "duplicate":
        lines += ["Host: gw.test", "Host: other.test"]
    elif host == "space-before-colon":
        lines.append("Host : gw.test")
    elif host != "missing":
        lines.append(f"Host: {host}".rstrip())
    auth = draw(st.sampled_from(AUTHS))
    if auth == "two":
        lines += [f"Authorization: Bearer {credentials.valid}", "Authorization: Bearer evil"]
    elif auth == "garbage":
        lines.append("Authorization: Bearer not-a-token")
    elif auth is not None:
        lines.append(f"Authorization: Bearer {getattr(credentials, auth)}")
    spellings = IDENTITY_SPELLINGS if wild else IDENTITY_SPELLINGS[:-1]  # no " :"
    for name, value in draw(st.lists(st.sampled_from(spellings), max_size=2)):
        lines.append(f"{name}: {value}")
    for name, value in draw(st.lists(st.sampled_from(FORWARDED), max_size=2)):
        lines.append(f"{name}: {value}")
    connection = draw(st.sampled_from(CONNECTIONS))
    if connection is not None:
        lines.append(f"Connection: {connection}")
        if connection == "X-Custom":
            lines.append("X-Custom: hop")
    if (connection or "").startswith("Upgrade") or draw(st.integers(0, 15)) == 0:
        upgrade = draw(st.sampled_from(["websocket", "h2c", None]))
        if upgrade is not None:
            lines.append(f"Upgrade: {upgrade}")
    if draw(st.integers(0, 7)) == 0:
        lines.append("Expect: 100-continue")
    if draw(st.integers(0, 15)) == 0:
        lines.append(f"X-Request-Id: client-{index}")
    if wild and draw(st.integers(0, 7)) == 0:
        lines.append("X-Folded: a\r\n b")  # obs-fold (RFC 9112 §5.2)
    if wild and draw(st.integers(0, 3)) == 0:
        lines.append("X-Odd: " + draw(ODD_TEXT))  # bytes a field value may or may not hold
    framing, body = draw(framed_body(credentials, last, wild))
    lines += framing
    lines = draw(st.permutations(lines)) if draw(st.integers(0, 3)) == 0 else lines
    ends = ["\r\n"] * (len(lines) + 2)
    if wild and draw(st.integers(0, 5)) == 0:
        ends[draw(st.integers(0, len(ends) - 1))] = draw(st.sampled_from(["\n", "\r"]))
    space = "  " if wild and draw(st.integers(0, 9)) == 0 else " "  # RFC 9112 §3: SP, or more
    head = space.join(part for part in (method, target, version) if part) + ends[0]
    head += "".join(line + end for line, end in zip(lines, ends[1:], strict=False))
    head += ends[-1]
    encoded = head.encode("latin-1")
    return _Rendered(encoded + body.data, (len(encoded), *(len(encoded) + c for c in body.cuts)))


@st.composite
def streams(draw: st.DrawFn, credentials: Credentials) -> Stream:
    count = draw(st.sampled_from([1, 1, 2, 2, 3]))
    data = bytearray()
    marks: list[int] = []
    for index in range(count):
        rendered = draw(request_bytes(credentials, index, last=index == count - 1))
        marks += [len(data) + cut for cut in rendered.cuts]
        data += rendered.data
    data += draw(st.sampled_from(TAILS))
    cuts = draw(
        st.lists(
            st.sampled_from(marks) | st.integers(1, max(1, len(data) - 1)),
            max_size=4,
            unique=True,
        )
    )
    points = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    chunks = tuple(bytes(data[a:b]) for a, b in itertools.pairwise(points) if b > a)
    return Stream(
        variant=draw(st.sampled_from(VARIANTS)),
        chunks=chunks,
        pause_seconds=draw(st.sampled_from([0.002, 0.001, 0.005])),
    )
