"""Fixtures for the unit tests: in-process logs (in-memory and embedded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logact.server.local import LocalLog, open_embedded, open_memory


@pytest.fixture
async def memory_log() -> AsyncIterator[LocalLog]:
    async with open_memory() as log:
        yield log


@pytest.fixture(params=["memory", "embedded"])
async def any_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LocalLog]:
    """The same behaviour is expected of every in-process implementation."""
    if request.param == "memory":
        async with open_memory() as log:
            yield log
    else:
        async with open_embedded(tmp_path / "embedded") as log:
            yield log
