"""Reading the config file: strict YAML, then `${VAR}` substitution with YAML paths in errors.

Two things PyYAML does by default that a security config must not:
- a repeated mapping key silently wins (`require:` written twice drops the first rule set), so the
  loader here rejects duplicates;
- nothing: environment references are ours to resolve. They are resolved *after* parsing, in
  string values only, so a variable's content can never change the YAML structure (no injection
  of keys through the environment).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from m2mgate.errors import ConfigError


class EnvText(str):
    """A string that came from an environment variable.

    YAML gives `leeway_seconds: 30` an int, but `leeway_seconds: ${LEEWAY}` can only give a string.
    Numeric and boolean fields accept an `EnvText` and convert it (see `schema.py`); a plain YAML
    string stays a type error, so strictness is kept where the author wrote the value by hand.
    """

    __slots__ = ()


_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(parts: tuple[str | int, ...]) -> str:
    """`("routes", 2, "require")` -> `routes[2].require`: the form every config error uses.

    Keys that are not plain names (claim paths like `realm_access.roles`, header names with
    dots) are quoted: `require.claims["realm_access.roles"]`.
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            text += f'["{part}"]'
        else:
            text += f".{part}" if text else part
    return text or "(root)"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1})", mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown position)"
        raise ConfigError([(where, f"invalid YAML: {error.problem or error}")]) from None
    except yaml.YAMLError as error:
        raise ConfigError([("(root)", f"invalid YAML: {error}")]) from None


def substitute_environment(tree: Any, environ: Mapping[str, str]) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in string values; `$$` is a literal `$`.

    Every unset variable without a default is reported with its YAML path, all at once.
    """
    problems: list[tuple[str, str]] = []

    def visit(node: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(node, dict):
            return {key: visit(value, (*path, str(key))) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(item, (*path, index)) for index, item in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return substitute_text(node, environ, format_path(path), problems)
        return node

    result = visit(tree, ())
    if problems:
        raise ConfigError(problems)
    return result


def substitute_text(
    text: str, environ: Mapping[str, str], path: str, problems: list[tuple[str, str]]
) -> str:
    used_environment = False

    def replace(match: re.Match[str]) -> str:
        nonlocal used_environment
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        used_environment = True
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                problems.append((path, f"environment variable {name} is not set"))
                return ""
            return default
        return value

    replaced = _REFERENCE.sub(replace, text)
    return EnvText(replaced) if used_environment else replaced


def load_tree(path: Path, environ: Mapping[str, str] | None = None) -> Any:
    """Read, parse and substitute a config file into plain data (not yet validated)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([("(file)", f"cannot read {path}: {error.strerror or error}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([("(file)", f"{path} is not UTF-8 text")]) from None
    tree = parse_yaml(text)
    return substitute_environment(tree, os.environ if environ is None else environ)
