"""The command line's arguments: every command, flag and help text (`m2mgate --help`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from m2mgate import __version__

CONFIG_ENV = "M2MGATE_CONFIG"
SECRET_ENV = "M2MGATE_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret


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


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= count <= 64:
        raise argparse.ArgumentTypeError("--workers must be from 1 to 64")
    return count
