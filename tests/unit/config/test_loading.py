import re

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
    assert where == "routes[0].require"
    assert message.startswith("duplicate key (line 4, first at line 3)")


DUPLICATES = """\
listen: 127.0.0.1:8080
issuers:
  - name: a
    claims:
      roles: [x]
      roles: [y]
    name: b
routes:
  - name: r
    require: {scopes: [admin]}
    path: /api/**
    require:
      scopes: [read]
log_level: info

log_level: debug
"""


def test_every_duplicate_key_is_reported_with_its_path_and_lines_and_the_first_value_kept():
    """Found in review: the first duplicate stopped all reporting (and the error named the
    position of the whole mapping). Now each is a problem, loading goes on with the first
    value, and the other problems of the file are reported in the same pass."""
    problems = []
    tree = parse_yaml(DUPLICATES, problems)
    assert [(where, message.split(")")[0] + ")") for where, message in problems] == [
        ("issuers[0].claims.roles", "duplicate key (line 6, first at line 5)"),
        ("issuers[0].name", "duplicate key (line 7, first at line 3)"),
        ("routes[0].require", "duplicate key (line 12, first at line 10)"),
        ("log_level", "duplicate key (line 16, first at line 14)"),
    ]
    lines = DUPLICATES.splitlines()
    for where, message in problems:
        key = where.rpartition(".")[2].partition("[")[0]
        second, first = (int(n) for n in re.findall(r"line (\d+)", message))
        assert lines[second - 1].lstrip(" -").startswith(f"{key}:"), (where, message)
        assert lines[first - 1].lstrip(" -").startswith(f"{key}:"), (where, message)
    assert tree["issuers"][0] == {"name": "a", "claims": {"roles": ["x"]}}
    assert tree["routes"][0]["require"] == {"scopes": ["admin"]}
    assert tree["log_level"] == "info"


def test_duplicates_in_flow_style_and_under_aliases():
    problems = []
    tree = parse_yaml("a: &x {k: 1, k: 2}\nb: [{m: 1}, {m: 2, m: 3}]\nc: *x\n", problems)
    assert [where for where, _ in problems] == ["a.k", "b[1].m"]
    assert tree == {"a": {"k": 1}, "b": [{"m": 1}, {"m": 2}], "c": {"k": 1}}


def test_unhashable_keys_are_refused():
    with pytest.raises(ConfigError):
        parse_yaml("? [a, b]\n: 1\n")


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
