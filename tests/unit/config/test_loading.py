import pytest

from m2mgate.config.loading import (
    EnvText,
    format_path,
    load_tree,
    parse_yaml,
    substitute_environment,
)
from m2mgate.errors import ConfigError


def test_duplicate_keys_are_errors():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("routes:\n  - name: a\n    require: {}\n    require: {scopes: [x]}\n")
    ((where, message),) = caught.value.problems
    assert "line 4" in where
    assert "duplicate key 'require'" in message


def test_yaml_syntax_errors_name_the_position():
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a: [1, 2\nb: 3\n")
    assert caught.value.problems[0][0].startswith("line ")


def test_unsafe_tags_are_refused():
    with pytest.raises(ConfigError):
        parse_yaml("a: !!python/object/apply:os.system ['true']")


def test_environment_substitution():
    tree = {
        "a": "${HOST}:${PORT:-8080}",
        "b": ["x${MISSING_OK:-}y", 3],
        "c": "$${NOT}",
        "d": "plain",
    }
    result = substitute_environment(tree, {"HOST": "h"})
    assert result == {"a": "h:8080", "b": ["xy", 3], "c": "${NOT}", "d": "plain"}
    assert isinstance(result["a"], EnvText)
    assert not isinstance(result["c"], EnvText)  # only references mark a value as env-born


def test_empty_variable_takes_the_default():
    assert substitute_environment({"a": "${V:-d}"}, {"V": ""}) == {"a": "d"}
    assert substitute_environment({"a": "${V}"}, {"V": ""}) == {"a": ""}


def test_unset_variables_are_all_reported_with_paths():
    tree = {"issuers": [{"issuer": "${ISSUER}"}], "upstream": {"url": "${UPSTREAM}"}}
    with pytest.raises(ConfigError) as caught:
        substitute_environment(tree, {})
    assert caught.value.problems == [
        ("issuers[0].issuer", "environment variable ISSUER is not set"),
        ("upstream.url", "environment variable UPSTREAM is not set"),
    ]


def test_variables_never_change_structure():
    result = substitute_environment({"a": "${EVIL}"}, {"EVIL": "x\nb: injected"})
    assert result == {"a": "x\nb: injected"}


def test_format_path_quotes_non_plain_keys():
    assert format_path(("routes", 2, "require", "claims", "realm_access.roles")) == (
        'routes[2].require.claims["realm_access.roles"]'
    )
    assert format_path(()) == "(root)"


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_tree(tmp_path / "nope.yaml")
    assert caught.value.problems[0][0] == "(file)"


def test_non_utf8_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"a: \xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_tree(path)
