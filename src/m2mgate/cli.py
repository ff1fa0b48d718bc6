"""Command line: `m2mgate run | check | schema`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from m2mgate import __version__
from m2mgate.app import Gateway
from m2mgate.config.compiling import Settings, load_settings
from m2mgate.config.schema import ConfigSchema
from m2mgate.errors import ConfigError
from m2mgate.observability.logging import route_stdlib_logging

CONFIG_ENV = "M2MGATE_CONFIG"


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
        description="Serve the gateway. SIGTERM/SIGINT stop accepting connections, drain "
        "in-flight requests (up to shutdown_grace_seconds) and exit 0.",
    )
    _config_argument(run)

    check = commands.add_parser(
        "check",
        help="validate a config file",
        description="Validate a config file without starting anything. Prints every problem "
        "as `yaml.path: message`. Exit status: 0 valid, 1 invalid.",
    )
    _config_argument(check)

    commands.add_parser(
        "schema",
        help="print the JSON Schema of the config file",
        description="Print the JSON Schema of the config file (for editors and CI checks).",
    )
    return parser


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=os.environ.get(CONFIG_ENV) or None,  # empty = unset
        help=f"config file (YAML); default: ${CONFIG_ENV}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "schema":
        return _schema()
    if args.config is None:
        print(
            f"m2mgate {args.command}: --config FILE (or ${CONFIG_ENV}) is required", file=sys.stderr
        )
        return 2
    if args.command == "check":
        return _check(args.config)
    return _run(args.config)


def _print_problems(error: ConfigError, stream: TextIO) -> None:
    for where, message in error.problems:
        print(f"{where}: {message}", file=stream)


def _check(path: Path) -> int:
    try:
        settings = load_settings(path)
    except ConfigError as error:
        _print_problems(error, sys.stdout)
        print(f"{path}: {len(error.problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{path}: ok ({len(settings.issuers)} issuer(s), {len(settings.routes.routes)} route(s))")
    return 0


def _schema() -> int:
    schema = ConfigSchema.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "m2mgate config"
    print(json.dumps(schema, indent=2))
    return 0


def _run(path: Path) -> int:
    try:
        settings = load_settings(path)
    except ConfigError as error:
        _print_problems(error, sys.stderr)
        return 1
    route_stdlib_logging(level=settings.log_level)
    asyncio.run(_serve(settings))
    return 0


async def _serve(settings: Settings) -> None:
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await gateway.start()
    try:
        await stop.wait()
    finally:
        await gateway.stop()
