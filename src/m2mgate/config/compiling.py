"""Validated config -> frozen runtime objects. The request path only ever sees these.

`load_settings` is the whole pipeline: read YAML strictly, substitute `${VAR}`, validate against
the schema and across items (every problem at once, each with its YAML path), compile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m2mgate.auth.claim_checks import TokenTypeGuard
from m2mgate.auth.claim_projection import ClaimProjection, claims_read_by
from m2mgate.auth.claims import ClaimKind, ClaimLayout, ClaimPath, ClaimSource
from m2mgate.auth.policy import ClaimRule, Requirement
from m2mgate.auth.presets import PRESETS
from m2mgate.auth.verifier import IssuerPolicy
from m2mgate.config.cross_checks import cross_item_problems
from m2mgate.config.errors import in_file_order, model_problems
from m2mgate.config.loading import read_tree
from m2mgate.config.schema import ConfigSchema
from m2mgate.config.schema_claims import ClaimSourceSchema
from m2mgate.config.schema_issuers import IssuerSchema
from m2mgate.config.schema_routes import RequireSchema, RouteSchema
from m2mgate.config.warnings import ConfigWarning, config_warnings
from m2mgate.errors import ConfigError
from m2mgate.keys.cache import CachePolicy
from m2mgate.keys.source import KeySourceSettings
from m2mgate.keys.ttl import TtlBounds
from m2mgate.listen_address import ListenAddress
from m2mgate.proxy.forward_rules import ForwardRules
from m2mgate.proxy.settings import UpstreamSettings
from m2mgate.routing import Route, RouteTable, covered_methods
from m2mgate.server.limits import BodyLimits, ConnectionLimits


@dataclass(frozen=True, slots=True)
class IssuerSettings:
    policy: IssuerPolicy
    source: KeySourceSettings
    cache: CachePolicy


@dataclass(frozen=True, slots=True)
class Settings:
    listen: ListenAddress
    admin_listen: ListenAddress
    upstream: UpstreamSettings
    issuers: tuple[IssuerSettings, ...]
    forward: ForwardRules
    routes: RouteTable
    max_token_bytes: int
    token_cache_entries: int
    token_cache_max_bytes: int
    listener: ConnectionLimits  # how the proxy listener treats clients (applied at start)
    body_limits: BodyLimits
    shutdown_grace_seconds: float
    shutdown_delay_seconds: float
    log_level: str
    # The claims a principal keeps after verification: those config reads later.
    principal_claims: ClaimProjection
    # Valid, but likely wider than meant (config/warnings.py): `check` prints them, `run`
    # logs them. (yaml path, message) pairs.
    warnings: tuple[ConfigWarning, ...] = ()


def load_settings(path: Path, environ: Mapping[str, str] | None = None) -> Settings:
    loaded = read_tree(path, environ)
    return compile_settings(validate_tree(loaded.tree, loaded.problems, loaded.unresolved))


def validate_tree(
    tree: Any,
    earlier: Sequence[tuple[str, str]] = (),
    unresolved: frozenset[str] = frozenset(),
) -> ConfigSchema:
    """The validated config, or ConfigError with every problem: `earlier` ones (from reading
    the file), the schema's, and the cross-item ones. Schema problems at `unresolved` paths
    (values that lost an unset variable) are left out: they would repeat that problem."""
    config, schema_problems = model_problems(
        ConfigSchema, tree, context={"issuer_names": _issuer_names(tree)}
    )
    problems = [
        *earlier,
        *(problem for problem in schema_problems if problem[0] not in unresolved),
        *cross_item_problems(tree, _LISTEN_DEFAULTS),
    ]
    if problems or config is None:
        raise ConfigError(in_file_order(tree, problems or schema_problems))
    return config


_LISTEN_DEFAULTS = {
    name: str(ConfigSchema.model_fields[name].default) for name in ("listen", "admin_listen")
}


def _issuer_names(tree: Any) -> frozenset[str] | None:
    """Issuer names as written, so `require.issuers` can be checked in the same pass."""
    issuers = tree.get("issuers") if isinstance(tree, dict) else None
    if not isinstance(issuers, list):
        return None
    return frozenset(
        item["name"]
        for item in issuers
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    )


def compile_settings(config: ConfigSchema) -> Settings:
    # Again here, for models that did not come through validate_tree: duplicate `issuer` values
    # would let one issuer's policy silently replace another's.
    problems = cross_item_problems(config.model_dump(), _LISTEN_DEFAULTS)
    if problems:
        raise ConfigError(problems)
    routes = RouteTable(tuple(_route(item) for item in config.routes))
    return Settings(
        listen=config.listen,
        admin_listen=config.admin_listen,
        upstream=UpstreamSettings(
            target=config.upstream.url,
            connect_timeout_seconds=config.upstream.connect_timeout_seconds,
            timeout_seconds=config.upstream.timeout_seconds,
            max_connections=config.upstream.max_connections,
        ),
        issuers=tuple(_issuer(item) for item in config.issuers),
        forward=ForwardRules(
            client_id=config.forward.client_id,
            scopes=config.forward.scopes,
            roles=config.forward.roles,
            issuer=config.forward.issuer,
            subject=config.forward.subject,
            tenant=config.forward.tenant,
            claims=tuple(config.forward.claims.items()),
            pass_authorization=config.forward.authorization,
            preserve_host=config.upstream.preserve_host,
            trusted_proxies=config.forward.trusted_proxies,
        ),
        routes=routes,
        max_token_bytes=config.limits.max_token_bytes,
        token_cache_entries=config.limits.token_cache_entries,
        token_cache_max_bytes=config.limits.token_cache_max_bytes,
        listener=ConnectionLimits(
            max_header_bytes=config.limits.max_header_bytes,
            max_headers=config.limits.max_headers,
            max_url_bytes=config.limits.max_url_bytes,
            head_timeout_seconds=config.limits.head_timeout_seconds,
            keepalive_timeout_seconds=config.limits.keepalive_timeout_seconds,
            send_timeout_seconds=config.limits.send_timeout_seconds,
            max_connections=config.limits.max_connections,
        ),
        body_limits=BodyLimits(
            # 0 is a limit of zero bytes (any body byte -> 413), only `null` is unlimited:
            # `0 or None` used to turn the strictest setting into no limit at all.
            max_bytes=config.limits.max_body_bytes,
            idle_timeout_seconds=config.limits.body_idle_timeout_seconds,
        ),
        shutdown_grace_seconds=config.shutdown_grace_seconds,
        shutdown_delay_seconds=config.shutdown_delay_seconds,
        log_level=config.log_level,
        principal_claims=_claims_config_reads(config),
        warnings=config_warnings(config, routes),
    )


def _claims_config_reads(config: ConfigSchema) -> ClaimProjection:
    """Every claim path read from a verified principal: `require.claims`, `forward.claims`."""
    paths = [path for route in config.routes if route.require for path in route.require.claims]
    paths += config.forward.claims.values()
    return claims_read_by(paths)


def _layout(item: IssuerSchema) -> ClaimLayout:
    """The preset's claim layout with the issuer's `claims:` replacements applied."""
    layout = PRESETS[item.preset].layout
    override = item.claims
    if override is None:
        return layout
    changes: dict[str, Any] = {}
    if override.client_id is not None:
        changes["client_id"] = tuple(override.client_id)
    if override.scopes is not None:
        changes["scopes"] = tuple(_source(source) for source in override.scopes)
    if override.roles is not None:
        changes["roles"] = tuple(_source(source) for source in override.roles)
    if "tenant" in override.model_fields_set:  # `tenant: null` removes the preset's tenant
        changes["tenant"] = override.tenant
    return dataclasses.replace(layout, **changes)


def _source(source: ClaimSourceSchema) -> ClaimSource:
    return ClaimSource(source.path, ClaimKind(source.type))


def _guard(item: IssuerSchema) -> TokenTypeGuard:
    """The preset's token-type guard, or the issuer's `token_type:` in its place."""
    override = item.token_type
    if override is None:
        return PRESETS[item.preset].guard

    def markers(rules: dict[ClaimPath, list[str]]) -> tuple[tuple[ClaimPath, frozenset[str]], ...]:
        return tuple((path, frozenset(values)) for path, values in rules.items())

    return TokenTypeGuard(
        header_typ=(
            frozenset(value.lower() for value in override.header_typ)
            if override.header_typ is not None
            else None
        ),
        claims=markers(override.claims),
        claims_when_present=markers(override.claims_when_present),
    )


def _issuer(item: IssuerSchema) -> IssuerSettings:
    algorithms = frozenset(item.algorithms)
    ttl = TtlBounds(
        min_seconds=item.jwks.min_ttl_seconds,
        max_seconds=item.jwks.max_ttl_seconds,
        default_seconds=item.jwks.default_ttl_seconds,
    )
    return IssuerSettings(
        policy=IssuerPolicy(
            name=item.name,
            issuer=item.issuer,
            audiences=frozenset(item.audiences),
            client_ids=frozenset(item.client_ids),
            algorithms=algorithms,
            layout=_layout(item),
            guard=_guard(item),
            leeway_seconds=item.leeway_seconds,
            max_token_lifetime_seconds=item.max_token_lifetime_seconds,
        ),
        source=KeySourceSettings(
            issuer=item.issuer,
            jwks_uri=item.jwks_uri,
            allow_insecure_http=item.allow_insecure_http,
            algorithms=algorithms,
            ttl=ttl,
            fetch_timeout_seconds=item.jwks.fetch_timeout_seconds,
            max_response_bytes=item.jwks.max_response_bytes,
        ),
        cache=CachePolicy(
            ttl=ttl,
            refetch_cooldown_seconds=item.jwks.refetch_cooldown_seconds,
            max_stale_seconds=item.jwks.max_stale_seconds,
        ),
    )


def _route(item: RouteSchema) -> Route:
    return Route(
        name=item.name,
        pattern=item.path,
        methods=covered_methods(item.methods) if item.methods is not None else None,
        requirement=_requirement(item.require) if item.require is not None else None,
        is_deny=item.deny,
    )


def _requirement(item: RequireSchema) -> Requirement:
    return Requirement(
        scopes=frozenset(item.scopes),
        any_scopes=frozenset(item.any_scopes),
        roles=frozenset(item.roles),
        any_roles=frozenset(item.any_roles),
        claims=tuple(ClaimRule(path, allowed) for path, allowed in item.claims.items()),
        issuers=frozenset(item.issuers),
        challenge_scopes=tuple(dict.fromkeys([*item.scopes, *item.any_scopes])),
    )
