"""Reading the config file: strict YAML, then `${VAR}` substitution with YAML paths in errors.

Two things PyYAML does by default that a security config must not:
- a repeated mapping key silently wins (`require:` written twice drops the first rule set), so the
  loader here reports every duplicate as a problem, with its YAML path and both lines, and goes
  on with the first value only so that the file's other problems are reported in the same pass
  (the file is refused either way);
- nothing: environment references are ours to resolve. They are resolved *after* parsing, in
  string values only, so a variable's content can never change the YAML structure (no injection
  of keys through the environment).
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
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
    """SafeLoader that reports repeated mapping keys (keeping the first value), not the last.

    It tracks the YAML path of what it constructs (mappings and sequences are built depth
    first, see `_construct_mapping`), so a duplicate is reported where it is.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.path: list[str | int] = []
        self.duplicates: list[tuple[str, str]] = []


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    first_lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key",
                key_node.start_mark,
            )  # fmt: skip
        if key in mapping:
            loader.duplicates.append(
                (
                    format_path((*loader.path, str(key))),
                    f"duplicate key (line {line}, first at line {first_lines[key]}); "
                    "write each key once",
                )
            )
            continue
        loader.path.append(str(key))
        try:
            mapping[key] = loader.construct_object(value_node, deep=True)
        finally:
            loader.path.pop()
        first_lines[key] = line
    return mapping


def _construct_sequence(loader: _StrictLoader, node: yaml.SequenceNode) -> list[Any]:
    items: list[Any] = []
    for index, child in enumerate(node.value):
        loader.path.append(index)
        try:
            items.append(loader.construct_object(child, deep=True))
        finally:
            loader.path.pop()
    return items


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def parse_yaml(text: str, problems: list[tuple[str, str]] | None = None) -> Any:
    """Parse YAML strictly. Each duplicate key is added to `problems` (its first value kept);
    without a list, ConfigError with every duplicate. Invalid YAML is a ConfigError at once."""
    loader = _StrictLoader(text)
    try:
        tree = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown position)"
        raise ConfigError([(where, f"invalid YAML: {error.problem or error}")]) from None
    except yaml.YAMLError as error:
        raise ConfigError([("(root)", f"invalid YAML: {error}")]) from None
    finally:
        loader.dispose()
    if problems is None and loader.duplicates:
        raise ConfigError(loader.duplicates)
    if problems is not None:
        problems.extend(loader.duplicates)
    return tree


def substitute_environment(
    tree: Any, environ: Mapping[str, str], problems: list[tuple[str, str]] | None = None
) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in string values; `$$` is a literal `$`.

    Every unset variable without a default is reported with its YAML path, all at once: added
    to `problems` (its reference replaced by ""), or, without a list, as a ConfigError.
    """
    collected: list[tuple[str, str]] = [] if problems is None else problems
    found_before = len(collected)

    def visit(node: Any, path: tuple[str | int, ...]) -> Any:
        if isinstance(node, dict):
            return {key: visit(value, (*path, str(key))) for key, value in node.items()}
        if isinstance(node, list):
            return [visit(item, (*path, index)) for index, item in enumerate(node)]
        if isinstance(node, str) and "$" in node:
            return substitute_text(node, environ, format_path(path), collected)
        return node

    result = visit(tree, ())
    if problems is None and len(collected) > found_before:
        raise ConfigError(collected)
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


@dataclass(frozen=True, slots=True)
class LoadedTree:
    """A config file as plain data (not yet validated), with the problems found on the way."""

    tree: Any
    problems: list[tuple[str, str]]  # duplicate keys, unset variables
    # Paths whose value lost an unset variable: validating that value again would only repeat
    # the problem in other words.
    unresolved: frozenset[str]


def read_tree(path: Path, environ: Mapping[str, str] | None = None) -> LoadedTree:
    """Read, parse and substitute a config file, collecting every problem that lets reading go
    on. A file that cannot be read, or is not YAML, is a ConfigError at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([("(file)", f"cannot read {path}: {error.strerror or error}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([("(file)", f"{path} is not UTF-8 text")]) from None
    problems: list[tuple[str, str]] = []
    tree = parse_yaml(text, problems)
    unset: list[tuple[str, str]] = []
    tree = substitute_environment(tree, os.environ if environ is None else environ, unset)
    return LoadedTree(tree, problems + unset, frozenset(where for where, _ in unset))


def load_tree(path: Path, environ: Mapping[str, str] | None = None) -> Any:
    """Read, parse and substitute a config file into plain data; ConfigError on any problem."""
    loaded = read_tree(path, environ)
    if loaded.problems:
        raise ConfigError(loaded.problems)
    return loaded.tree
