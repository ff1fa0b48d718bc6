"""The forwarded family the upstream receives: X-Forwarded-For/-Proto/-Host and RFC 7239
`Forwarded`, per the trust settings (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from m2mgate.http_token import TOKEN
from m2mgate.proxy.forward_rules import ForwardRules
from m2mgate.proxy.header_names import REBUILT
from m2mgate.request_path import is_valid_authority

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """What the gateway knows of the downstream connection, for X-Forwarded-*."""

    address: str | None
    scheme: str
    host: str | None


def forwarded_headers(
    rules: ForwardRules, client: ClientFacts, incoming: dict[str, list[tuple[str, str]]]
) -> Headers:
    """The forwarded family, per the trust settings (`incoming`: the family members the
    request carried, by normalised name, each with its original name and value).

    - From a trusted proxy (`forward.trusted_proxies`): everything it sent is kept (it
      terminated TLS, it saw the client); its X-Forwarded-Proto/-Host are believed, the peer
      is appended to X-Forwarded-For, and to `Forwarded` (RFC 7239 §4) when it sent one.
    - From any other peer: every family member is removed. Threat (#8): `Forwarded`,
      `X-Real-IP`, `True-Client-IP`, `X-Forwarded-Port`, `X-Forwarded-Prefix` from a client
      let it choose the address an upstream allowlists, or the prefix it builds URLs with.
      X-Forwarded-Proto/-Host are the gateway's own view. X-Forwarded-For: with
      `trusted_proxies` configured it is only the peer; with none configured the client's
      chain is kept and the peer appended (the CONTRACT's default): only the last hop, added
      here, can be trusted by the upstream.
    """
    trusted = rules.trusts(client.address)
    keep_chain = trusted or not rules.trusted_proxies
    chain = [value for _, value in incoming.get("x-forwarded-for", ())] if keep_chain else []
    if client.address:
        chain.append(client.address)
    headers: Headers = []
    if trusted:
        for key, found in incoming.items():
            if key not in REBUILT:
                headers.extend(found)
        elements = [value for _, value in incoming.get("forwarded", ())]
        if elements:
            elements.append(_forwarded_element(client))
            headers.append(("Forwarded", ", ".join(elements)))
    if chain:
        headers.append(("X-Forwarded-For", ", ".join(chain)))
    proto = _last(incoming, "x-forwarded-proto", client.scheme) if trusted else client.scheme
    headers.append(("X-Forwarded-Proto", proto))
    host = _last(incoming, "x-forwarded-host", client.host or "") if trusted else client.host
    if host and not is_valid_authority(host):
        host = client.host  # even a trusted proxy's value must be an authority (RFC 9112 §3.2)
    if host:
        headers.append(("X-Forwarded-Host", host))
    return headers


def _last(incoming: dict[str, list[tuple[str, str]]], key: str, default: str) -> str:
    found = incoming.get(key)
    return found[-1][1] if found else default


def _forwarded_element(client: ClientFacts) -> str:
    """This hop's RFC 7239 element: the peer, the scheme it used, the Host it sent."""
    peer = client.address or "unknown"
    parts = [("for", f"[{peer}]" if ":" in peer else peer), ("proto", client.scheme)]
    if client.host:
        parts.append(("host", client.host))
    return ";".join(
        f"{key}={value}" if TOKEN.fullmatch(value) else f'{key}="{value}"' for key, value in parts
    )
