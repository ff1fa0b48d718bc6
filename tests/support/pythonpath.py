"""PYTHONPATH for a `python -m m2mgate` process started in another directory."""

from __future__ import annotations

import os


def absolute_pythonpath() -> str:
    """This run's PYTHONPATH (e.g. a worktree's `src`) with every entry made absolute: in
    another working directory a relative entry finds nothing, and the installed package
    (another checkout's code) would be imported instead."""
    parts = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return os.pathsep.join(os.path.abspath(part) for part in parts if part)
