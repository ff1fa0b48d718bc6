"""The request head as llhttp hands it over, piece by piece, held within the listener's size
limits (the request line, each field line, the number of fields, and a chunked body's trailer
section), so no part can grow without bound while it trickles in. No I/O: the connection's
parser callbacks call these, and a Refused raised here stops llhttp with a precise status."""

from __future__ import annotations

from m2mgate.server.limits import ConnectionLimits
from m2mgate.server.request_head import READ_BY_GATEWAY


class Refused(Exception):
    """Raised inside a parser callback to stop parsing with a precise status; `reason`
    names the rule for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason


class HeadReader:
    """One per connection; `begin()` starts each request's head afresh."""

    __slots__ = (
        "_limits",
        "_trailer_fields",
        "_url_bytes",
        "headers",
        "is_head",
        "read_here",
        "refusal",
        "url",
    )  # fmt: skip

    def __init__(self, limits: ConnectionLimits) -> None:
        self._limits = limits
        self.url: list[bytes] = []
        self._url_bytes = 0
        self.headers: list[tuple[str, str]] = []
        self.read_here: list[tuple[bytes, str]] = []  # the fields in READ_BY_GATEWAY, in order
        self._trailer_fields = 0  # of the chunked body being read: its trailer section
        self.is_head = False  # the request being parsed is HEAD (its refusal has no body)
        # Why llhttp was stopped (httptools wraps the exception a callback raises).
        self.refusal: Refused | None = None

    def begin(self) -> None:
        self.url = []
        self._url_bytes = 0
        self.headers = []
        self.read_here = []
        self._trailer_fields = 0
        self.is_head = False

    def refuse(self, status: int, reason: str) -> Refused:
        self.refusal = Refused(status, reason)
        return self.refusal

    @property
    def target(self) -> str:
        return b"".join(self.url).decode("latin-1")

    def add_url(self, url: bytes, method: bytes) -> None:
        if not self.url:
            self.is_head = method == b"HEAD"
        self.url.append(url)
        self._url_bytes += len(url)
        # The request line: method SP target SP HTTP/1.1
        if self._url_bytes + 10 + len(method) > self._limits.max_url_bytes:
            raise self.refuse(414, "request_line_too_long")

    def add_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > self._limits.max_header_bytes or (
            len(self.headers) >= self._limits.max_headers
        ):
            raise self.refuse(431, "header_fields_too_large")
        text = value.decode("latin-1")
        self.headers.append((name.decode("latin-1"), text))
        lowered = name.lower()
        if lowered in READ_BY_GATEWAY:
            self.read_here.append((lowered, text))

    def add_trailer(self, name: bytes, value: bytes) -> None:
        """A trailer field of a chunked request body: counted against the head's limits, then
        dropped. RFC 9110 §6.5.1: trailers must not be merged into the header section.
        Threat (#8): a trailer `Authorization` or `Host` was appended to the forwarded
        headers, a second credential or Host the gateway never checked. A recipient that
        removes the chunked coding may discard trailers (RFC 9112 §7.1.2): the gateway does,
        so the upstream never sees fields nobody vetted."""
        self._trailer_fields += 1
        if (
            len(name) + len(value) + 2 > self._limits.max_header_bytes
            or self._trailer_fields > self._limits.max_headers
        ):
            raise self.refuse(431, "trailer_fields_too_large")
