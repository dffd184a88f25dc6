"""Fixtures shared by the agent unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """An empty workspace directory for the executor's tools."""
    root = tmp_path / "ws"
    root.mkdir()
    return root
