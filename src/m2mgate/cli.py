"""Command line: `m2mgate run | check | explain | demo | schema | token | issuer | hash-secret`.

Exit status: 0 success (explain: allow), 1 failure (invalid config, deny, OAuth error), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from m2mgate.app.serve import WorkerRole, run
from m2mgate.app.stop_signals import run_until_stop_signal
from m2mgate.app.worker_processes import WorkersFailed
from m2mgate.arguments import CONFIG_ENV, build_parser
from m2mgate.config.compiling import load_settings
from m2mgate.config.schema import ConfigSchema
from m2mgate.demo.runner import DemoPorts, demo_config_text, serve_demo
from m2mgate.errors import ConfigError, MalformedToken
from m2mgate.explain import as_json, as_text, explain
from m2mgate.issuer.client_secrets import hash_secret
from m2mgate.issuer.config import load_issuer_settings
from m2mgate.issuer.server import DevIssuer
from m2mgate.jose import decode_unverified
from m2mgate.listen_address import parse_listen_address
from m2mgate.observability.logging import build_logger, route_stdlib_logging
from m2mgate.operator_input import UsageError, client_secret, jwks_files, read_token
from m2mgate.server.binding import CannotListen
from m2mgate.token_client import ClientCredentials, TokenError, get_token

__all__ = ["build_parser", "config_json_schema", "main"]

USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _dispatch(argv)
        finally:
            # Surface a closed stdout here, not in the interpreter's last flush (which would
            # print "Exception ignored ... BrokenPipeError" and exit 120).
            sys.stdout.flush()
    except BrokenPipeError:
        return _stdout_closed()


def _stdout_closed() -> int:
    """`m2mgate token ... | head -c 40`: the reader left. The Python docs' recipe (signal
    module, "Note on SIGPIPE"): point stdout at /dev/null so nothing else fails writing it,
    no traceback, exit 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def _dispatch(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _run,
        "check": _check,
        "explain": _explain,
        "demo": _demo,
        "schema": _schema,
        "token": _token,
        "issuer": _issuer,
        "hash-secret": _hash_secret,
    }
    try:
        return handlers[args.command](args)
    except UsageError as error:
        print(f"m2mgate {args.command}: {error}", file=sys.stderr)
        return USAGE


def _config_path(args: argparse.Namespace) -> Path:
    if args.config is None:
        raise UsageError(f"--config FILE (or ${CONFIG_ENV}) is required")
    return Path(args.config)


def _print_problems(error: ConfigError, stream: TextIO) -> None:
    for where, message in error.problems:
        print(f"{where}: {message}", file=stream)


# --- run / check / schema ------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    path = _config_path(args)
    try:
        settings = load_settings(path)
    except ConfigError as error:
        _print_problems(error, sys.stdout)
        print(f"{path}: {len(error.problems)} problem(s)", file=sys.stderr)
        return 1
    for where, message in settings.warnings:
        print(f"{where}: warning: {message}")
    counts = f"{len(settings.issuers)} issuer(s), {len(settings.routes.routes)} route(s)"
    if settings.warnings:
        counts += f", {len(settings.warnings)} warning(s)"
    print(f"{path}: ok ({counts})")
    return 0


def _schema(_: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def config_json_schema() -> dict[str, Any]:
    schema = ConfigSchema.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "m2mgate config",
        **schema,
    }


def _run(args: argparse.Namespace) -> int:
    path = _config_path(args)
    try:
        settings = load_settings(path)
    except ConfigError as error:
        _print_problems(error, sys.stderr)
        return 1
    route_stdlib_logging(level=settings.log_level)
    try:
        role = None
        if (
            args.worker_index is not None
            and args.worker_listen
            and args.worker_report_fd is not None
        ):
            role = WorkerRole(
                args.worker_index,
                parse_listen_address(args.worker_listen),
                args.worker_report_fd,
            )
        workers = args.workers if args.worker_index is None else 1  # a worker serves itself
        return run(settings, path, watch=args.watch, workers=workers, role=role)
    except (CannotListen, WorkersFailed, OSError) as error:
        # A port in use, an address not on this host, a worker that cannot start: one line
        # saying which and why (CannotListen names the address), never a traceback, and no
        # other OSError blamed on a listener.
        print(f"m2mgate run: {error}", file=sys.stderr)
        return 1


# --- explain -------------------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    path = _config_path(args)
    try:
        settings = load_settings(path)
    except ConfigError as error:
        _print_problems(error, sys.stderr)
        return USAGE
    token = None if args.no_token else read_token(args)
    jwks = jwks_files(args.jwks or [])
    result = asyncio.run(explain(settings, args.method.upper(), args.path, token, jwks))
    if args.json:
        print(json.dumps(as_json(result), indent=2))
    else:
        print(as_text(result))
    return 0 if result.is_allowed else 1


# --- demo / issuer -------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    ports = DemoPorts(args.port, args.admin_port, args.issuer_port, args.upstream_port)
    if args.print_config:
        print(demo_config_text(ports), end="")
        return 0
    route_stdlib_logging(sys.stderr, "info")
    log = build_logger(sys.stderr)
    return _run_until_signal(lambda: serve_demo(ports, log=log, out=sys.stdout))


def _issuer(args: argparse.Namespace) -> int:
    try:
        settings = load_issuer_settings(args.config)
    except ConfigError as error:
        _print_problems(error, sys.stderr)
        return 1
    route_stdlib_logging(level="info")

    async def serve() -> None:
        issuer = DevIssuer(settings, log=build_logger())
        await issuer.start()
        try:
            await asyncio.Event().wait()
        finally:
            await issuer.stop()

    return _run_until_signal(serve)


def _run_until_signal(serve: Callable[[], Coroutine[Any, Any, None]]) -> int:
    try:
        run_until_stop_signal(serve)
    except CannotListen as error:  # the demo's gateway ports
        print(f"m2mgate: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a port in use, most often
        print(f"m2mgate: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


# --- token / hash-secret ------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> int:
    if args.issuer is None and args.token_endpoint is None:
        raise UsageError("give --issuer (for discovery) or --token-endpoint")
    credentials = ClientCredentials(
        client_id=args.client_id,
        client_secret=client_secret(args),
        scope=args.scope,
        audience=args.audience,
        resource=args.resource,
        auth_method=args.auth_method,
    )
    try:
        body = asyncio.run(
            get_token(
                args.issuer,
                args.token_endpoint,
                credentials,
                allow_insecure_http=args.allow_insecure_http,
            )
        )
    except TokenError as error:
        print(f"m2mgate token: {error}", file=sys.stderr)
        return 1
    print(body["access_token"])
    if args.decode:
        try:
            header, claims = decode_unverified(body["access_token"])
        except MalformedToken:  # an opaque (non-JWT) access token is still a valid answer
            print("(the access token is not a JWT)", file=sys.stderr)
        else:
            decoded = {"header": header, "claims": claims, "expires_in": body.get("expires_in")}
            print(json.dumps(decoded, indent=2), file=sys.stderr)
    return 0


def _hash_secret(args: argparse.Namespace) -> int:
    secret = getpass.getpass("client secret: ") if sys.stdin.isatty() else sys.stdin.readline()
    secret = secret.rstrip("\r\n")
    if not secret:
        raise UsageError("the secret is empty")
    if args.iterations < 1000:
        raise UsageError("--iterations must be at least 1000")
    print(hash_secret(secret, args.iterations))
    return 0
