"""pydantic validation errors -> `yaml.path: message` lines that say what is allowed."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError

from m2mgate.config.loading import format_path
from m2mgate.errors import ConfigError

_MESSAGES = {
    "missing": "required",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "finite_number": "expected a finite number",
}


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_model(
    schema: type[ModelT], tree: Any, context: dict[str, Any] | None = None
) -> ModelT:
    """Validate plain data against a schema; ConfigError with every problem and its path."""
    model, problems = model_problems(schema, tree, context)
    if model is None:
        raise ConfigError(problems)
    return model


def model_problems(
    schema: type[ModelT], tree: Any, context: dict[str, Any] | None = None
) -> tuple[ModelT | None, list[tuple[str, str]]]:
    """Validate plain data against a schema: the model, or None and every problem."""
    if not isinstance(tree, dict):
        return None, [("(root)", "the config file must be a YAML mapping")]
    try:
        return schema.model_validate(tree, context=context), []
    except ValidationError as error:
        return None, problems_from_validation_error(error, schema)


def problems_from_validation_error(
    error: ValidationError, root: type[BaseModel]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        location = tuple(item["loc"])
        problems.append((_path(location), _message(item, location, root)))
    return problems


def _path(location: tuple[Any, ...]) -> str:
    return format_path(tuple(part if isinstance(part, int) else str(part) for part in location))


def _message(item: Any, location: tuple[Any, ...], root: type[BaseModel]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        owner = _model_at(root, location[:-1])
        if owner is not None:
            allowed = ", ".join(owner.model_fields)
            return f"unknown key (allowed: {allowed})"
        return "unknown key"
    if kind == "too_short":
        return f"needs at least {item.get('ctx', {}).get('min_length', 1)} item(s)"
    if kind == "literal_error":
        expected = item.get("ctx", {}).get("expected", "")
        return f"must be one of {expected}"
    if kind in ("value_error", "assertion_error"):
        return str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    return str(item["msg"]).replace("Input should be", "must be")


def _model_at(root: type[BaseModel], location: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that sits at `location` (walking fields, lists and optionals)."""
    current: Any = root
    for part in location:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X (the one model type inside an optional)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def in_file_order(tree: Any, problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Grouped by top-level key in the file's order, then by list item (`routes[2]`); stable,
    so the problems of one item keep their order."""
    order = {str(key): index for index, key in enumerate(tree)} if isinstance(tree, dict) else {}

    def rank(problem: tuple[str, str]) -> tuple[int, int]:
        match = _TOP_AND_ITEM.match(problem[0])
        top, item = match.groups() if match else (problem[0], None)
        position = order.get(top, -1 if top.startswith("(") else len(order))
        return position, int(item) if item is not None else -1

    return sorted(problems, key=rank)


_TOP_AND_ITEM = re.compile(r"([^.\[]*)(?:\[(\d+)\])?")
