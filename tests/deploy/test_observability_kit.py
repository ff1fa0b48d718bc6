"""The Grafana dashboard and the Prometheus alerts use only metrics and labels that a live
gateway really exports, so the kit and the code cannot drift apart."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.tools import ROOT
from tests.support.raw_http import raw_request

NAME = re.compile(r"\bm2mgate_[a-z0-9_]+")
SELECTOR = re.compile(r"(m2mgate_[a-z0-9_]+)\{([^}]*)\}")
BY = re.compile(r"\bby \(([^)]*)\)")


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((ROOT / "deploy/grafana/m2mgate-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yaml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


async def live_series(make_gateway, mint) -> dict[str, set[str]]:
    """Sample name -> label names, from a gateway that has seen every kind of traffic."""
    gw = await make_gateway(lambda c: c["upstream"].update(timeout_seconds=0.2))
    token = mint()
    assert (await gw.get("/api/user/x", token)).status == 200
    assert (await gw.get("/api/user/x", token)).status == 200  # a token cache hit
    assert (await gw.get("/api/admin/x", token)).status == 403
    assert (await gw.get("/api/user/x")).status == 401
    assert (await gw.get("/api/user/x?behaviour=hang", mint())).status == 504
    assert (await raw_request(gw.url, b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")).status == 400  # fmt: skip
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(await gw.metrics_text()):
        series.setdefault(family.name, set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def check(expressions: list[str], series: dict[str, set[str]]) -> list[str]:
    problems: list[str] = []
    for expr in expressions:
        names = set(NAME.findall(expr))
        for name in names:
            if name not in series:
                problems.append(f"{name} is not exported ({expr})")
        for name, matchers in SELECTOR.findall(expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                if label not in series.get(name, set()):
                    problems.append(f"{name} has no label {label!r}")
        labels_of_expr = set().union(*(series.get(name, set()) for name in names))
        for group in BY.findall(expr):
            for label in (part.strip() for part in group.split(",")):
                if label != "le" and label not in labels_of_expr:
                    problems.append(f"by ({label}) names no label of {sorted(names)}")
    return problems


async def test_dashboard_and_alerts_use_only_live_metrics_and_labels(make_gateway, mint):
    series = await live_series(make_gateway, mint)
    dashboard, alerts = dashboard_expressions(), alert_expressions()
    assert len(dashboard) >= 12 and len(alerts) >= 5
    assert check(dashboard, series) == []
    assert check(alerts, series) == []


def test_the_check_itself_catches_drift():
    series: dict[str, Any] = {"m2mgate_requests_total": {"route", "status"}}
    assert check(["sum by (route) (rate(m2mgate_requests_total[5m]))"], series) == []
    assert check(["rate(m2mgate_request_total[5m])"], series)  # a typo'd name
    assert check(['m2mgate_requests_total{kind="x"}'], series)  # a label it does not have
    assert check(["sum by (issuer) (m2mgate_requests_total)"], series)


def test_the_dashboard_covers_what_the_issue_asks_for():
    exprs = " ".join(dashboard_expressions())
    for needed in ("m2mgate_requests_total", "m2mgate_request_duration_seconds_bucket",
                   'decision="deny"', "m2mgate_jwks_fetches_total", "m2mgate_jwks_age_seconds",
                   "m2mgate_upstream_errors_total", "m2mgate_token_cache_lookups_total"):  # fmt: skip
        assert needed in exprs, needed
    alerts = " ".join(alert_expressions())
    for needed in ("m2mgate_jwks_ready", "m2mgate_jwks_stale", 'decision="deny"',
                   'status=~"5.."', "m2mgate_config_last_reload_successful"):  # fmt: skip
        assert needed in alerts, needed
