"""`m2mgate check` in process: what it prints and its exit status."""

from __future__ import annotations

from m2mgate.cli import main

MANY_PROBLEMS = """\
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:8080
upstream:
  url: ${M2MGATE_TEST_UNSET_UPSTREAM}
  timeout_seconds: "30"
issuers:
  - name: local
    issuer: http://127.0.0.1:8081
    audiences: [https://api.example]
    algorithms: [none]
  - name: local
    issuer: http://127.0.0.1:8081
    audiences: [https://api.example]
routes:
  - name: api
    path: /api/**
    require: {any_scopes: []}
    require: {}
  - name: api
    path: /API/**
    require: {}
  - name: bad
    path: /a/**/b
    methods: [get]
    public: true
log_level: loud
log_level: info
"""


def test_check_prints_every_problem_of_a_file_in_one_pass(tmp_path, capsys, monkeypatch):
    """Found in review: a YAML duplicate key stopped all other reporting, and duplicate names
    appeared only once every other problem was fixed."""
    monkeypatch.delenv("M2MGATE_TEST_UNSET_UPSTREAM", raising=False)
    path = tmp_path / "many.yaml"
    path.write_text(MANY_PROBLEMS)
    assert main(["check", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    expected = [
        "routes[0].require: duplicate key (line 18, first at line 17)",
        "log_level: duplicate key (line 27, first at line 26)",
        "upstream.url: environment variable M2MGATE_TEST_UNSET_UPSTREAM is not set",
        "admin_listen: the same socket as listen",
        "upstream.timeout_seconds: expected a number",
        "issuers[0].algorithms[0]: must be one of",
        "issuers[1].name: duplicate name 'local'",
        "issuers[1].issuer: duplicate issuer 'http://127.0.0.1:8081'",
        "routes[0].require.any_scopes: `any_scopes: []` names nothing",
        "routes[1].name: duplicate name 'api'",
        "routes[1].path: differs from routes[0].path only in letter case",
        "routes[2].path: '**' is only allowed as the last segment",
        "routes[2].methods[0]: methods are case-sensitive (RFC 9110 §9.1): write 'GET'",
        "log_level: must be one of",
    ]
    for start in expected:
        assert any(line.startswith(start) for line in lines), (start, lines)
    assert len(lines) == len(expected), lines  # nothing else (no noise from the unset value)
    assert f"{path}: {len(expected)} problem(s)" in err


def test_check_prints_warnings_and_exits_zero(tmp_path, capsys):
    """A valid config with warnings is valid (exit 0); each warning is one
    `yaml.path: warning: message` line before the summary."""
    path = tmp_path / "open.yaml"
    path.write_text(
        "upstream: {url: 'http://127.0.0.1:3000'}\n"
        "issuers: [{name: local, issuer: 'http://127.0.0.1:8081', audiences: []}]\n"
        "routes:\n"
        "  - {name: admin, path: /api/admin/**, methods: [GET], require: {scopes: [admin]}}\n"
        "  - {name: public, path: /**, public: true}\n"
    )
    assert main(["check", "--config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("issuers[0].audiences: warning: ")
    assert lines[1].startswith("routes[0].methods: warning: ")
    assert lines[2] == f"{path}: ok (1 issuer(s), 2 route(s), 2 warning(s))"
    assert len(lines) == 3


def test_check_of_the_example_prints_no_warning(capsys):
    from tests.unit.config.test_schema import EXAMPLE

    assert main(["check", "--config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{EXAMPLE}: ok (1 issuer(s), 4 route(s))"]
