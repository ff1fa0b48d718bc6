"""A read-only root filesystem for `python -m m2mgate` processes, as the shipped Kubernetes
manifests run them (`readOnlyRootFilesystem: true`), without a container runtime or root.

`read_only_env` returns an environment whose interpreters (the supervisor and every worker
it starts inherit it) load a `sitecustomize` with an audit hook (PEP 578). The hook refuses,
with EROFS as the kernel would, every open for writing, and every mkdir, rename and unlink,
outside /dev (a real read-only root still has a writable /dev/null). Each refusal is also
written to stderr as `read-only root: refused ...`, so a test can assert that nothing even
tried to write. `TMPDIR` points at a directory that does not exist.

`refuse_spawn=True` also refuses to start subprocesses (EACCES), to see what a failure that
is not about listening says.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.pythonpath import absolute_pythonpath

REFUSAL_MARK = "read-only root: refused"

_SITECUSTOMIZE = """
import errno
import os
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_REFUSE_SPAWN = os.environ.get("M2MGATE_TEST_REFUSE_SPAWN") == "1"


def _refuse(what, path, code=errno.EROFS):
    sys.stderr.write(f"read-only root: refused {what} {path!r}\\n")
    raise OSError(code, os.strerror(code), path)


def _is_file_path(path):
    return isinstance(path, (str, bytes, os.PathLike))


def _on_dev(path):
    return os.fsdecode(os.fspath(path)).startswith("/dev/")


def _hook(event, args):
    if event == "open":
        path, mode, flags = args
        if not _is_file_path(path) or _on_dev(path):
            return  # an fd (a pipe), or /dev/null
        writes = (mode is not None and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writes:
            _refuse("write to", path)
    elif event in ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link"):
        if _is_file_path(args[0]) and not _on_dev(args[0]):
            _refuse(event, args[0])
    elif event == "subprocess.Popen" and _REFUSE_SPAWN:
        _refuse("to start", args[0], errno.EACCES)


sys.addaudithook(_hook)
"""


def read_only_env(directory: Path, *, refuse_spawn: bool = False) -> dict[str, str]:
    site = directory / "read-only-root-site"
    site.mkdir(parents=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(site), absolute_pythonpath()) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(directory / "no-such-tmp"),
        "M2MGATE_TEST_REFUSE_SPAWN": "1" if refuse_spawn else "0",
    }
