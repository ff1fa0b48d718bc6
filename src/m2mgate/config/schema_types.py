"""Field types the config schema's sections share: values that may come from the environment,
the strict base model, names, scope-tokens and claim paths, and `ParsedFrom`, which makes a
validated field hold what compiling consumes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

from m2mgate.auth.claims import ClaimPath, format_claim_path, parse_claim_path
from m2mgate.config.loading import EnvText

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Enforcing it here means a scope
# from config can be quoted in a WWW-Authenticate challenge without escaping. `\Z`, not `$`:
# `$` matches before a final newline, and "admin\n" in a challenge breaks the response head.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+\Z")


# --- values that may come from the environment --------------------------------------------------


def _env_int(value: Any) -> Any:
    if isinstance(value, EnvText):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("expected an integer (from the environment)") from None
    return value


def _env_float(value: Any) -> Any:
    if isinstance(value, EnvText):
        try:
            return float(value.strip())
        except ValueError:
            raise ValueError("expected a number (from the environment)") from None
    return value


def _env_bool(value: Any) -> Any:
    if isinstance(value, EnvText):
        lowered = value.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise ValueError("expected true or false (from the environment)")
    return value


EnvInt = Annotated[int, BeforeValidator(_env_int)]
EnvFloat = Annotated[float, BeforeValidator(_env_float)]
EnvBool = Annotated[bool, BeforeValidator(_env_bool)]
Seconds = Annotated[EnvFloat, Field(allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass(frozen=True, slots=True)
class ParsedFrom:
    """Field metadata: the value is written, validated and documented as `written` (so
    `m2mgate schema` and every type error stay those of `written`), then `parse` makes it the
    runtime value, once: compiling takes it as it is, never parsing the text again. `parse`
    raises ValueError with a message for `yaml.path: message`, at the field's own path.
    `text` writes the value back, so `model_dump` gives the config as written (the cross-item
    checks read that)."""

    written: Any
    parse: Callable[[Any], Any]
    text: Callable[[Any], Any]

    def __get_pydantic_core_schema__(
        self, _source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            self.parse,
            handler.generate_schema(self.written),
            serialization=core_schema.plain_serializer_function_ser_schema(self.text),
        )


ClaimPathText = Annotated[ClaimPath, ParsedFrom(str, parse_claim_path, format_claim_path)]
