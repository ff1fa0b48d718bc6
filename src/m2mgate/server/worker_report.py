"""How a worker of `run --workers N` tells its supervisor that it serves, and where its admin
port is: one JSON line through a pipe the worker inherits (`pass_fds`).

Why a pipe and not a file: the shipped manifests run with `readOnlyRootFilesystem: true`, where
there is no writable directory to put a report in (#8: the supervisor's temp directory made
`--workers` fail to start there). A pipe needs no filesystem, and it also says when a worker
died before reporting: the supervisor reads end-of-file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

_MAX_REPORT_BYTES = 4096  # PIPE_BUF on Linux: one write of at most this is atomic


def report_pipe() -> tuple[int, int]:
    """(read end, write end). Both are non-inheritable (PEP 446): only the worker given the
    write end in `pass_fds` holds a copy, so no other child keeps the pipe open."""
    return os.pipe()


async def read_report(read_fd: int) -> dict[str, Any] | None:
    """The worker's report, or None if it exited (the pipe closed) without sending one.
    Takes ownership of `read_fd`. The caller's write end must be closed already, or this
    never sees end-of-file."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_MAX_REPORT_BYTES)
    pipe = os.fdopen(read_fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    try:
        line = await reader.readline()
    except ValueError:  # longer than any report: not one
        return None
    finally:
        transport.close()
    try:
        report = json.loads(line)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def send_report(write_fd: int, index: int, admin: str) -> None:
    """Called by a worker once it serves. One write, so the line arrives whole."""
    line = json.dumps({"index": index, "pid": os.getpid(), "admin": admin}) + "\n"
    # A supervisor that has gone (EPIPE) sends this worker SIGTERM anyway (PR_SET_PDEATHSIG).
    with contextlib.suppress(BrokenPipeError):
        os.write(write_fd, line.encode())
    os.close(write_fd)
