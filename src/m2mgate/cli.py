"""Command line: `m2mgate run | check | explain | demo | schema | token | issuer | hash-secret`.

Exit status: 0 success (explain: allow), 1 failure (invalid config, deny, OAuth error), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

import uvloop

from m2mgate import __version__
from m2mgate.app import Gateway
from m2mgate.config.compiling import Settings, load_settings
from m2mgate.config.schema import ConfigSchema
from m2mgate.demo.runner import DemoPorts, demo_config_text, serve_demo
from m2mgate.errors import ConfigError, MalformedToken
from m2mgate.explain import as_json, as_text, explain
from m2mgate.gc_tuning import freeze_startup_objects
from m2mgate.issuer.client_secrets import hash_secret
from m2mgate.issuer.config import load_issuer_settings
from m2mgate.issuer.server import DevIssuer
from m2mgate.jose import decode_unverified
from m2mgate.listen_address import ListenAddress, parse_listen_address
from m2mgate.observability.logging import build_logger, route_stdlib_logging
from m2mgate.server.binding import CannotListen
from m2mgate.server.worker_report import send_report
from m2mgate.server.workers import Supervisor, WorkersFailed
from m2mgate.token_client import ClientCredentials, TokenError, get_token

CONFIG_ENV = "M2MGATE_CONFIG"
SECRET_ENV = "M2MGATE_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
USAGE = 2


class UsageError(Exception):
    """A command line that cannot run; printed and exit 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="m2mgate",
        description="Machine-to-machine authentication gateway: verifies OAuth 2.0 "
        "client-credentials JWTs and forwards the verified identity to the API behind it.",
    )
    parser.add_argument("--version", action="version", version=f"m2mgate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="serve the gateway",
        description="Serve the gateway. SIGTERM/SIGINT: /readyz answers 503 at once; after "
        "shutdown_delay_seconds (default 0; a second signal skips it) the gateway stops "
        "accepting connections, drains in-flight requests (up to shutdown_grace_seconds) and "
        "exits 0. SIGHUP reloads the "
        "config: a valid file is swapped in atomically, an invalid one is refused (every "
        "problem logged) and the old config keeps serving.",
    )
    _config_argument(run)
    run.add_argument(
        "--watch", action="store_true", help="also reload when the config file's content changes"
    )
    run.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="run N gateway processes sharing the proxy port (SO_REUSEPORT), one core each; "
        "the admin port merges their metrics and readiness (default 1)",
    )
    # Internal: how the supervisor of `--workers N` starts each worker.
    run.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    run.add_argument("--worker-listen", help=argparse.SUPPRESS)
    run.add_argument("--worker-report-fd", type=int, help=argparse.SUPPRESS)

    check = commands.add_parser(
        "check",
        help="validate a config file",
        description="Validate a config file without starting anything. Prints every problem "
        "as `yaml.path: message`, and each warning (valid, but likely wider than meant) as "
        "`yaml.path: warning: message`. Exit status: 0 valid (warnings or not), 1 invalid.",
    )
    _config_argument(check)

    explain_parser = commands.add_parser(
        "explain",
        help="show the gateway's decision for one request, step by step",
        description="Decide one request offline, with the gateway's own decision code: which "
        "route matched, each verification step, the principal, each requirement, and the "
        "final decision. Exit status: 0 allow, 1 deny, 2 usage or config error.",
    )
    _config_argument(explain_parser)
    explain_parser.add_argument("--method", default="GET", help="HTTP method (default GET)")
    explain_parser.add_argument("--path", required=True, help="request path, with query if any")
    source = explain_parser.add_mutually_exclusive_group()
    source.add_argument("--token", help="the access token (default: read from stdin)")
    source.add_argument("--token-file", type=Path, help="read the token from a file ('-': stdin)")
    source.add_argument("--no-token", action="store_true", help="explain a request without one")
    explain_parser.add_argument(
        "--jwks",
        action="append",
        metavar="[ISSUER=]FILE",
        help="offline: verify with keys from this JWKS file (for every issuer, or one issuer "
        "by name); repeatable. Default: fetch each issuer's JWKS.",
    )
    explain_parser.add_argument("--json", action="store_true", help="machine-readable output")

    demo = commands.add_parser(
        "demo",
        help="gateway + embedded issuer + echo upstream in one process",
        description="Run the gateway, an embedded OAuth 2.0 issuer and an echo upstream on "
        "127.0.0.1, with two demo clients, and print copy-paste curl commands for the flow.",
    )
    demo.add_argument("--port", type=int, default=8080, help="gateway port (default 8080)")
    demo.add_argument("--admin-port", type=int, default=9901, help="admin port (default 9901)")
    demo.add_argument("--issuer-port", type=int, default=8081, help="issuer port (default 8081)")
    demo.add_argument(
        "--upstream-port", type=int, default=8082, help="echo upstream port (default 8082)"
    )
    demo.add_argument(
        "--print-config",
        action="store_true",
        help="print the demo's gateway config (for check/explain) and exit",
    )

    commands.add_parser(
        "schema",
        help="print the JSON Schema of the config file",
        description="Print the JSON Schema of the config file (for editor completion and CI).",
    )

    token = commands.add_parser(
        "token",
        help="get an access token with the client-credentials grant",
        description="Get an access token (RFC 6749 §4.4) and print it on stdout. The token "
        "endpoint is found by discovery from --issuer unless --token-endpoint is given. "
        f"The secret comes from --client-secret, --client-secret-file, ${SECRET_ENV}, or a "
        "prompt. Exit status: 0 ok, 1 the server refused (its OAuth error on stderr), 2 usage "
        "(a missing or conflicting option, no secret).",
    )
    token.add_argument("--issuer", help="issuer URL (discovery finds the token endpoint)")
    token.add_argument("--token-endpoint", help="token endpoint URL (skips discovery)")
    token.add_argument("--client-id", required=True)
    secret = token.add_mutually_exclusive_group()
    secret.add_argument("--client-secret", help="visible in shell history: prefer the others")
    secret.add_argument("--client-secret-file", type=Path, help="file holding the secret")
    token.add_argument("--scope", help='space-separated scopes, e.g. "read:data admin"')
    token.add_argument("--audience", help="audience to request (the `audience` parameter)")
    token.add_argument("--resource", help="resource indicator to request (RFC 8707 `resource`)")
    token.add_argument(
        "--auth-method",
        choices=("client_secret_basic", "client_secret_post"),
        default="client_secret_basic",
    )
    token.add_argument(
        "--decode", action="store_true", help="also print the token's header and claims (stderr)"
    )
    token.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow plain http to a non-loopback host (the secret travels in clear)",
    )

    issuer = commands.add_parser(
        "issuer",
        help="run the embedded OAuth 2.0 issuer on its own",
        description="Run the development issuer: client-credentials grant at POST "
        "/oauth/token, JWKS at /.well-known/jwks.json, discovery documents.",
    )
    issuer.add_argument("--config", type=Path, required=True, help="issuer config file (YAML)")

    hashing = commands.add_parser(
        "hash-secret",
        help="hash a client secret for the issuer config",
        description="Read a client secret (prompt, or stdin when piped) and print its "
        "PBKDF2 hash for `client_secret_hash` in an issuer config.",
    )
    hashing.add_argument("--iterations", type=int, default=100_000)
    return parser


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_ENV) or None,  # empty = unset
        help=f"config file (YAML); default: ${CONFIG_ENV}",
    )


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
        if args.workers > 1 and args.worker_index is None:
            return asyncio.run(Supervisor(settings, path, args.workers, args.watch).run())
        worker = None
        if (
            args.worker_index is not None
            and args.worker_listen
            and args.worker_report_fd is not None
        ):
            worker = (
                args.worker_index,
                parse_listen_address(args.worker_listen),
                args.worker_report_fd,
            )
        # The gateway (one process, or one worker) runs on uvloop, a C event loop: 6-8% more
        # requests per second and 7% less CPU per request than asyncio's, in alternating runs
        # (bench/RESULTS.md). The test suite's in-process gateways use asyncio's loop; the
        # subprocess tests (run, --workers, demo) run this one.
        uvloop.run(_serve(settings, path, args.watch, worker))
    except (CannotListen, WorkersFailed, OSError) as error:
        # A port in use, an address not on this host, a worker that cannot start: one line
        # saying which and why (CannotListen names the address), never a traceback, and no
        # other OSError blamed on a listener.
        print(f"m2mgate run: {error}", file=sys.stderr)
        return 1
    return 0


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError("--workers must be from 1 to 64")
    return count


async def _serve(
    settings: Settings,
    path: Path,
    watch: bool,
    worker: tuple[int, ListenAddress, int] | None = None,
) -> None:
    gateway = Gateway(
        settings,
        config_path=path,
        worker_listen=worker[1] if worker is not None else None,
        worker_index=worker[0] if worker is not None else None,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = loop.create_task(gateway.reload("signal"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    await gateway.start()  # a failed start has released what it opened, and logged nothing
    freeze_startup_objects()
    if worker is not None:
        host, port = gateway.admin_address
        send_report(worker[2], worker[0], f"{host}:{port}")
    watcher = loop.create_task(gateway.watch_config()) if watch else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        stop.clear()  # from now on, a second SIGTERM/SIGINT skips the shutdown delay
        await gateway.shut_down(skip_delay=stop)


# --- explain -------------------------------------------------------------------------------------


def _explain(args: argparse.Namespace) -> int:
    path = _config_path(args)
    try:
        settings = load_settings(path)
    except ConfigError as error:
        _print_problems(error, sys.stderr)
        return USAGE
    token = None if args.no_token else _read_token(args)
    jwks = _jwks_files(args.jwks or [])
    result = asyncio.run(explain(settings, args.method.upper(), args.path, token, jwks))
    if args.json:
        print(json.dumps(as_json(result), indent=2))
    else:
        print(as_text(result))
    return 0 if result.is_allowed else 1


def _read_token(args: argparse.Namespace) -> str:
    if args.token is not None:
        text = str(args.token)
    elif args.token_file is not None and str(args.token_file) != "-":
        try:
            text = Path(args.token_file).read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot read {args.token_file}: {error.strerror}") from None
    elif args.token_file is not None or not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        raise UsageError("give --token, --token-file, a token on stdin, or --no-token")
    text = text.strip()
    if text.lower().startswith("bearer "):
        text = text[7:].strip()  # a pasted header value
    if not text:
        raise UsageError("the token is empty")
    return text


def _jwks_files(values: list[str]) -> dict[str | None, Path]:
    files: dict[str | None, Path] = {}
    for value in values:
        name, separator, file = value.partition("=")
        key = name if separator else None
        target = Path(file if separator else value)
        if not target.is_file():
            raise UsageError(f"--jwks {value}: no such file")
        files[key] = target
    return files


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


def _run_until_signal(start: Callable[[], Coroutine[Any, Any, None]]) -> int:
    async def main() -> None:
        task = asyncio.ensure_future(start())
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
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
        client_secret=_client_secret(args),
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


def _client_secret(args: argparse.Namespace) -> str:
    if args.client_secret is not None:
        return str(args.client_secret)
    if args.client_secret_file is not None:
        try:
            return Path(args.client_secret_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise UsageError(f"cannot read {args.client_secret_file}: {error.strerror}") from None
    from_environment = os.environ.get(SECRET_ENV)
    if from_environment:
        return from_environment
    if sys.stdin.isatty():
        return getpass.getpass("client secret: ")
    raise UsageError(f"no client secret (--client-secret-file, ${SECRET_ENV}, or a terminal)")


def _hash_secret(args: argparse.Namespace) -> int:
    secret = getpass.getpass("client secret: ") if sys.stdin.isatty() else sys.stdin.readline()
    secret = secret.rstrip("\r\n")
    if not secret:
        raise UsageError("the secret is empty")
    if args.iterations < 1000:
        raise UsageError("--iterations must be at least 1000")
    print(hash_secret(secret, args.iterations))
    return 0
