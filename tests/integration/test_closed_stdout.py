"""Every command that prints, with stdout a pipe whose reader has gone (`m2mgate ... | head`).

The Python docs' recipe for SIGPIPE: no traceback, stdout pointed at /dev/null so the
interpreter's last flush cannot fail again, exit 1. Each command runs as a real process.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from m2mgate.demo.runner import DemoPorts, demo_config_text
from tests.integration.test_issuer import CLIENTS, issuer  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(120)


async def with_closed_stdout(*args: str, stdin: bytes = b"") -> tuple[int, str]:
    """Run `m2mgate ARGS` with stdout a pipe whose read end is already closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before the first byte is written
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "m2mgate", *args,
            stdin=subprocess.PIPE, stdout=write_end, stderr=subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write_end)
    _, err = await asyncio.wait_for(process.communicate(stdin), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.fixture
def demo_config(tmp_path: Path) -> str:
    path = tmp_path / "demo.yaml"
    path.write_text(demo_config_text(DemoPorts()))
    return str(path)


@pytest.mark.parametrize(
    "command",
    [
        ["schema"],
        ["check", "--config", "{config}"],
        ["explain", "--config", "{config}", "--path", "/public/info", "--no-token"],
        ["demo", "--print-config"],
        ["hash-secret", "--iterations", "1000"],
    ],
    ids=lambda command: command[0],
)
async def test_a_closed_stdout_exits_1_without_a_traceback(command, demo_config):
    args = [part.format(config=demo_config) for part in command]
    code, err = await with_closed_stdout(*args, stdin=b"a-secret\n")
    assert (code, err) == (1, "")


async def test_token_to_a_closed_stdout_exits_1_without_a_traceback(issuer):  # noqa: F811
    code, err = await with_closed_stdout(
        "token", "--issuer", issuer.issuer, "--client-id", "reader",
        "--client-secret", CLIENTS["reader"][0],
    )  # fmt: skip
    assert (code, err) == (1, "")
