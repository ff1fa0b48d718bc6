"""Checks across several items of a config: unique names, distinct listen sockets.

They read the plain tree (the YAML as parsed), not validated models, and skip what they cannot
read, because pydantic runs a list's validators only when every item of it is valid: written as
validators, a duplicate route name surfaced only once every other problem was fixed. Read here,
they are reported in the same pass as every other problem (`compiling.validate_tree`), and
`compile_settings` runs them again on any validated model, so no path into the runtime skips
them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from m2mgate.listen_address import ListenAddress, parse_listen_address

Problem = tuple[str, str]

# Hosts that bind every address of their family: a socket there clashes with any other host.
_WILDCARDS = frozenset({"0.0.0.0", "::"})  # noqa: S104 - names compared, nothing is bound


def cross_item_problems(tree: Any, defaults: Mapping[str, str]) -> list[Problem]:
    """Every cross-item problem of a config tree; `defaults`: listen and admin_listen's."""
    if not isinstance(tree, dict):
        return []  # the root has its own error
    return [
        *_listen_sockets(tree, defaults),
        *_unique(tree, "issuers", "name", "name"),
        # A token's `iss` selects exactly one issuer policy: a second one with the same `issuer`
        # would silently replace the first.
        *_unique(tree, "issuers", "issuer", "issuer"),
        *_unique(tree, "routes", "name", "name"),
        *_case_only_paths(tree),
    ]


def _items(tree: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    items = tree.get(key)
    if not isinstance(items, list):
        return []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, dict)]


def _unique(tree: dict[str, Any], key: str, field: str, label: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, item in _items(tree, key):
        value = item.get(field)
        if not isinstance(value, str):
            continue
        if value in seen:
            problems.append(
                (
                    f"{key}[{index}].{field}",
                    f"duplicate {label} {value!r} ({key}[{seen[value]}] has it too)",
                )
            )
        else:
            seen[value] = index
    return problems


def _case_only_paths(tree: dict[str, Any]) -> list[Problem]:
    # Two patterns that differ only in letter case would make every request to either one
    # case-confused (see routing.py): refuse the config instead.
    problems: list[Problem] = []
    seen: dict[str, tuple[int, str]] = {}
    for index, item in _items(tree, "routes"):
        path = item.get("path")
        if not isinstance(path, str):
            continue
        folded = path.lower()
        first = seen.setdefault(folded, (index, path))
        if first[1] != path:
            problems.append(
                (
                    f"routes[{index}].path",
                    f"differs from routes[{first[0]}].path only in letter case; requests to "
                    "them could not be routed unambiguously",
                )
            )
    return problems


def _listen_sockets(tree: dict[str, Any], defaults: Mapping[str, str]) -> list[Problem]:
    """`admin_listen` must not be the proxy's socket: one of the two would fail to bind, or,
    with port sharing, the admin endpoints would answer on the public port."""
    proxy = _address(tree.get("listen", defaults["listen"]))
    admin = _address(tree.get("admin_listen", defaults["admin_listen"]))
    if proxy is None or admin is None or not _same_socket(proxy, admin):
        return []
    return [
        (
            "admin_listen",
            f"the same socket as listen ({proxy}): the admin endpoints need their own port "
            "(or host)",
        )
    ]


def _address(value: Any) -> ListenAddress | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_listen_address(value)
    except ValueError:
        return None  # the field has its own error


def _same_socket(left: ListenAddress, right: ListenAddress) -> bool:
    if left.port != right.port or left.port == 0:  # port 0: each gets a free port
        return False
    hosts, others = _hosts(left.host), _hosts(right.host)
    return bool(hosts & others or (hosts | others) & _WILDCARDS)


def _hosts(host: str) -> frozenset[str]:
    if host.lower().rstrip(".") == "localhost":
        return frozenset({"127.0.0.1", "::1"})  # binding `localhost` binds both
    try:
        return frozenset({ipaddress.ip_address(host).compressed})
    except ValueError:
        return frozenset({host.lower().rstrip(".")})
