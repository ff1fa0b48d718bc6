"""Field types the config schema's sections share: values that may come from the environment,
the strict base model, names, scope-tokens and claim paths.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from m2mgate.auth.claims import parse_claim_path
from m2mgate.config.loading import EnvText

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Enforcing it here means a scope
# from config can be quoted in a WWW-Authenticate challenge without escaping.
SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


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


def _claim_path(value: str) -> str:
    parse_claim_path(value)
    return value


ClaimPathText = Annotated[str, AfterValidator(_claim_path)]
