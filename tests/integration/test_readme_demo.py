"""The README's demo walk-through, run as a reader runs it: every `sh` block pasted, in order,
into one fresh shell (PATH=/usr/bin:/bin, cwd a clone with `.venv/bin/m2mgate`), against the
real `m2mgate demo`. Each output the README shows right after a block must be what that block
prints, up to what differs on every run (request and key ids, times, the curl version).

#8 found the walk-through calling a bare `m2mgate` a fresh shell does not have, and outputs
shown as real that were not.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pythonpath import absolute_pythonpath

ROOT = Path(__file__).resolve().parents[2]
FRESH_PATH = "/usr/bin:/bin"
CONSOLE_SCRIPT = Path(sys.executable).parent / "m2mgate"  # what scripts/bootstrap installs

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("curl", path=FRESH_PATH) is None, reason="no curl"),
    pytest.mark.skipif(shutil.which("python3", path=FRESH_PATH) is None, reason="no python3"),
    pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="m2mgate is not installed"),
]

_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
_PAIR = re.compile(r"```sh\n(.*?)```\n```\w*\n(.*?)```", re.S)
_RUN_TO_RUN = [
    (re.compile(r"\b[0-9a-f]{32}\b"), "<id>"),
    (re.compile(r"^Date: .*$", re.M), "Date: <date>"),
    (re.compile(r"curl/[\w.-]+"), "curl/<version>"),
    (re.compile(r"kid [A-Za-z0-9_-]{43}"), "kid <kid>"),
    (re.compile(r"exp in \d+m\d\ds, iat \d+m\d\ds ago"), "exp in <t>, iat <t> ago"),
    (re.compile(r"expires_at  \S+"), "expires_at  <time>"),
    (re.compile(r"Bearer token, \d+ characters"), "Bearer token, <n> characters"),  # iss port
]


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## The demo, step by step") : text.index("## Running it in front")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_shell_env(home: Path) -> dict[str, str]:
    env = {"PATH": FRESH_PATH, "HOME": str(home)}
    if os.environ.get("PYTHONPATH"):  # a worktree's sources, as this test run uses them
        env["PYTHONPATH"] = absolute_pythonpath()  # the shell runs in another directory
    return env


def same_run(text: str) -> str:
    text = text.replace("\r\n", "\n")  # curl -i prints the head as it came: CRLF
    for pattern, replacement in _RUN_TO_RUN:
        text = pattern.sub(replacement, text)
    return text.strip()


async def test_the_readme_walkthrough_runs_in_a_fresh_shell_and_prints_what_it_shows(tmp_path):
    ports = {"8080": free_port(), "9901": free_port(), "8081": free_port(), "8082": free_port()}

    def on_test_ports(text: str) -> str:
        for default, port in ports.items():
            text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{port}")
        return text.replace(
            "demo --print-config",
            f"demo --print-config --port {ports['8080']} --admin-port {ports['9901']} "
            f"--issuer-port {ports['8081']} --upstream-port {ports['8082']}",
        )

    section = walkthrough()
    commands = [body for kind, body in _BLOCK.findall(section) if kind == "sh"]
    shown = dict(_PAIR.findall(section))  # sh block -> the output shown right after it
    assert len(commands) >= 6 and len(shown) >= 6
    script = "".join(
        f"printf '\\n@@{index}@@\\n'\n{on_test_ports(body)}" for index, body in enumerate(commands)
    )
    clone = tmp_path / "clone"
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "bin" / "m2mgate").symlink_to(CONSOLE_SCRIPT)

    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "m2mgate", "demo", "--port", str(ports["8080"]),
        "--admin-port", str(ports["9901"]), "--issuer-port", str(ports["8081"]),
        "--upstream-port", str(ports["8082"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        for _ in range(100):
            line = await asyncio.wait_for(demo.stdout.readline(), 20)
            assert line, "the demo exited before printing its instructions"
            if line.startswith(b"Stop with Ctrl-C."):
                break
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", script, cwd=clone, env=fresh_shell_env(tmp_path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(shell.communicate(), 60)
    finally:
        demo.terminate()
        _, log = await asyncio.wait_for(demo.communicate(), 15)
    assert err.decode() == ""  # e.g. no "m2mgate: command not found"
    printed = re.split(r"\n@@(\d+)@@\n", out.decode())[1:]
    outputs = {
        commands[int(index)]: text for index, text in zip(printed[::2], printed[1::2], strict=True)
    }
    for command, expected in shown.items():
        assert same_run(outputs[command]) == same_run(on_test_ports(expected)), command

    # The log line shown for step 3 has the fields a real one has, in the same order.
    (example,) = [
        json.loads(body)
        for kind, body in _BLOCK.findall(section)
        if kind == "json" and '"event": "request"' in body
    ]
    (real,) = [
        event
        for event in map(json.loads, log.decode().splitlines())
        if event.get("event") == "request" and event.get("status") == 403
    ]
    assert list(example) == list(real)
    assert {k: example[k] for k in ("route", "status", "reason", "detail")} == {
        k: real[k] for k in ("route", "status", "reason", "detail")
    }
