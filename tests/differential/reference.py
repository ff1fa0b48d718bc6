"""The reference reading of a client byte stream: h11 as a server, plus the few RFC 9112 rules
h11 leaves to its caller.

h11 is an independent HTTP/1.1 implementation (not llhttp). What it makes of the stream is what
the client framed: where each request ends, its headers, its body and its trailers. The
gateway may be stricter (refuse what h11 accepts: obs-fold, bare LF, `Content-Length: 1, 1`),
never looser in a way that changes the meaning: it must not forward a request this reading
refused, nor anything after it on that connection.

On top of h11, each with its RFC:
- RFC 9112 §2.2: empty lines before a request line are ignored (llhttp does too; h11 refuses);
- RFC 9112 §2.3 / RFC 9110 §2.5: only HTTP/1.x is this protocol. `HTTP/2.0` or `HTTP/0.9` on
  an HTTP/1.1 request line is refused (h11 takes any digit.digit);
- RFC 9112 §3.2: a `Host` field value must be a valid uri-host [":" port] (h11 checks only its
  count); §3.2.3: a CONNECT's target is authority-form (h11 takes any target);
- RFC 9112 §9.3: HTTP/1.0 keep-alive (`Connection: keep-alive`) is honoured (h11 closes every
  HTTP/1.0 exchange, which would end the reading early);
- RFC 9112 §6.1: after a request with both Content-Length and Transfer-Encoding, or with
  Transfer-Encoding in HTTP/1.0, the connection must close: nothing after it is a request;
- RFC 9110 §7.8: a server may ignore Upgrade; the reading goes on as HTTP/1.1 after it;
- RFC 9112 §3: a recipient may take runs of SP between the parts of a request line as one
  (llhttp does; h11 refuses); the gateway writes its own request line upstream, so it reads
  `GET  /x HTTP/1.1` as the reference then does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import h11

Fields = list[tuple[bytes, bytes]]

# RFC 3986 §3.2.2 host (IP-literal, IPv4 or reg-name) and §3.2.3 port.
_UNRESERVED_OR_SUB = rb"A-Za-z0-9\-._~!$&'()*+,;="
_HOST = re.compile(
    rb"(\[[0-9A-Fa-f:.]+\]|\[v[0-9A-Fa-f]+\.[" + _UNRESERVED_OR_SUB + rb":]+\]"
    rb"|(?:[" + _UNRESERVED_OR_SUB + rb"]|%[0-9A-Fa-f]{2})*)(:[0-9]*)?"
)


def is_valid_host(value: bytes) -> bool:
    return _HOST.fullmatch(value) is not None


def connection_tokens(headers: Fields) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b",") if token.strip())
    return tokens


@dataclass
class RefRequest:
    index: int
    method: bytes
    target: bytes
    http_version: bytes
    headers: Fields
    body: bytearray = field(default_factory=bytearray)
    trailers: Fields = field(default_factory=list)
    complete: bool = False
    must_close: str | None = None  # why nothing after this request is on the connection

    def values(self, name: bytes) -> list[bytes]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    @property
    def connection_listed(self) -> set[bytes]:
        return connection_tokens(self.headers)


@dataclass
class Reference:
    """The requests the client framed, in order. Only complete ones are real requests; the
    last one may be incomplete (the stream ended in its head or body)."""

    requests: list[RefRequest]
    refused: str | None = None  # why the request at `refused_index` is not HTTP/1.1
    refused_index: int | None = None
    # The method the refused request's line names, as the client wrote it: a client reads the
    # answer to a HEAD it sent without a body, even when the request was not valid HTTP.
    refused_method: bytes | None = None
    stopped: str | None = None  # the connection ends after the last complete request
    partial_head: bytes = b""  # the stream ends inside a request head (not yet a request)

    @property
    def unfinished_method(self) -> bytes | None:
        """The method of the request after the last read one, when the client started it:
        refused, or cut inside its head. Its answer is read as the answer to that method."""
        if self.refused_index == len(self.requests) and self.refused_method:
            return self.refused_method
        return _method_token(self.partial_head) if self.partial_head else None

    @property
    def attempted(self) -> int:
        """How many requests the client started: each may get one final response."""
        extra = self.refused_index == len(self.requests) or bool(self.partial_head)
        return len(self.requests) + int(extra)

    @property
    def complete(self) -> list[RefRequest]:
        return [request for request in self.requests if request.complete]

    def describe(self) -> str:
        lines = [
            f"  #{r.index} {r.method.decode('latin-1')} {r.target.decode('latin-1')} "
            f"HTTP/{r.http_version.decode()} body={bytes(r.body)!r:.80} "
            f"{'complete' if r.complete else 'INCOMPLETE'}"
            + (f" trailers={r.trailers}" if r.trailers else "")
            + (f" then close ({r.must_close})" if r.must_close else "")
            for r in self.requests
        ]
        if self.refused is not None:
            lines.append(f"  #{self.refused_index} refused: {self.refused}")
        return "\n".join(lines) or "  (no request)"


def _strictness(request: h11.Request) -> str | None:
    """The RFC 9112 rules h11 leaves to its caller; the reason to refuse, or None."""
    if not request.http_version.startswith(b"1."):
        return f"HTTP/{request.http_version.decode()} is not HTTP/1.x (RFC 9112 §2.3)"
    for name, value in request.headers.raw_items():
        if name.lower() == b"host" and not is_valid_host(value):
            return f"invalid Host {value!r} (RFC 9112 §3.2)"
    if request.method == b"CONNECT" and (
        request.target.startswith(b"/") or not is_valid_host(request.target)
    ):
        return "CONNECT without an authority-form target (RFC 9112 §3.2.3)"
    return None


def _must_close(request: RefRequest) -> str | None:
    has_te = bool(request.values(b"transfer-encoding"))
    if has_te and request.values(b"content-length"):
        return "Content-Length with Transfer-Encoding (RFC 9112 §6.1)"
    if has_te and request.http_version == b"1.0":
        return "Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1)"
    tokens = request.connection_listed
    if b"close" in tokens:
        return "Connection: close (RFC 9112 §9.6)"
    if request.http_version == b"1.0" and b"keep-alive" not in tokens:
        return "HTTP/1.0 without keep-alive (RFC 9112 §9.3)"
    return None


_SPACED_REQUEST_LINE = re.compile(rb"([!-~]+) +([!-~]+) +(HTTP/[0-9]\.[0-9])\r?\n")


def _single_spaced(data: bytes) -> bytes:
    """RFC 9112 §3: runs of SP in the request line read as one SP."""
    match = _SPACED_REQUEST_LINE.match(data)
    if match is None:
        return data
    line = b" ".join(match.groups()) + data[match.end(3) : match.end()]
    return line + data[match.end() :]


_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _method_token(request: bytes) -> bytes | None:
    """The method a request line starts with, if it is a token (RFC 9110 §9.1)."""
    method = request.partition(b" ")[0]
    return method if _TOKEN.fullmatch(method) else None


def _skip_empty_lines(data: bytes) -> bytes:
    while data.startswith((b"\r\n", b"\n")):
        data = data[2:] if data.startswith(b"\r\n") else data[1:]
    return data


def read_reference(stream: bytes) -> Reference:
    reference = Reference([])
    rest = stream
    while True:
        rest = _single_spaced(_skip_empty_lines(rest))
        if not rest:
            return reference
        index = len(reference.requests)
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(rest)
        current: RefRequest | None = None
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    if current is None:
                        reference.partial_head = rest
                    return reference  # the stream ends inside this request
                if isinstance(event, h11.Request):
                    refusal = _strictness(event)
                    if refusal is not None:
                        reference.refused, reference.refused_index = refusal, index
                        reference.refused_method = _method_token(rest)
                        return reference
                    current = RefRequest(
                        index,
                        event.method,
                        event.target,
                        event.http_version,
                        list(event.headers.raw_items()),
                    )
                    reference.requests.append(current)
                elif isinstance(event, h11.Data) and current is not None:
                    current.body += event.data
                elif isinstance(event, h11.EndOfMessage) and current is not None:
                    current.trailers = list(event.headers.raw_items())
                    current.complete = True
                    break
        except h11.RemoteProtocolError as error:
            reference.refused, reference.refused_index = str(error), index
            reference.refused_method = _method_token(rest)
            return reference
        current.must_close = _must_close(current)
        if current.must_close is not None:
            reference.stopped = current.must_close
            return reference
        rest = bytes(conn.trailing_data[0])
