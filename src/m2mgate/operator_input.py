"""What the operator hands the command line besides flags: a token (flag, file or stdin), JWKS
files, a client secret (flag, file, environment or prompt). Bad input is a UsageError (exit 2).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from m2mgate.arguments import SECRET_ENV


class UsageError(Exception):
    """A command line that cannot run; printed and exit 2."""


def read_token(args: argparse.Namespace) -> str:
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


def jwks_files(values: list[str]) -> dict[str | None, Path]:
    files: dict[str | None, Path] = {}
    for value in values:
        name, separator, file = value.partition("=")
        key = name if separator else None
        target = Path(file if separator else value)
        if not target.is_file():
            raise UsageError(f"--jwks {value}: no such file")
        files[key] = target
    return files


def client_secret(args: argparse.Namespace) -> str:
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
