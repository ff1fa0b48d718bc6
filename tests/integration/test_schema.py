"""`m2mgate schema`: a JSON Schema of the config models that real configs validate against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from m2mgate.cli import config_json_schema
from m2mgate.demo.runner import DemoPorts, demo_config_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "config" / "m2mgate.schema.json"


def test_committed_schema_is_current():
    """config/m2mgate.schema.json (the editor modeline's target) matches the models."""
    assert json.loads(SCHEMA_FILE.read_text()) == config_json_schema(), (
        "regenerate: m2mgate schema > config/m2mgate.schema.json"
    )


def test_example_config_declares_the_schema_for_editors():
    first_line = (ROOT / "config" / "example.yaml").read_text().splitlines()[0]
    assert first_line == "# yaml-language-server: $schema=./m2mgate.schema.json"


@pytest.mark.parametrize(
    "text",
    [(ROOT / "config" / "example.yaml").read_text(), demo_config_text(DemoPorts())],
    ids=["example.yaml", "demo"],
)
def test_configs_validate_against_the_schema(text):
    jsonschema.Draft202012Validator.check_schema(config_json_schema())
    jsonschema.validate(
        yaml.safe_load(text), config_json_schema(), cls=jsonschema.Draft202012Validator
    )


@pytest.mark.parametrize(
    "mutation",
    [
        lambda c: c.update(surprise=1),
        lambda c: c["routes"][1]["require"].update(requried_scopes=["x"]),
        lambda c: c["issuers"][0].update(algorithms=["none"]),
        lambda c: c["issuers"][0].update(leeway_seconds="30"),
        lambda c: c.pop("upstream"),
        lambda c: c["routes"][2]["require"].update(any_scopes=[]),
        lambda c: c["routes"][1]["require"].update(claims={}),
        lambda c: c["routes"][1].update(methods=["get"]),
    ],
)
def test_the_schema_catches_what_check_catches(mutation):
    config: dict[str, Any] = yaml.safe_load((ROOT / "config" / "example.yaml").read_text())
    mutation(config)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, config_json_schema(), cls=jsonschema.Draft202012Validator)


def test_every_field_has_a_description():
    schema = config_json_schema()
    missing = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                if "description" not in prop:
                    missing.append(f"{where}.{name}")
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(schema, "#")
    assert missing == []
