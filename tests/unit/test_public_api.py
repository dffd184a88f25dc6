"""The curated public surfaces: what a user imports from each package exists, and names nothing
twice across the packages that re-export the protocol."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = (
    "logact.protocol",
    "logact.client",
    "logact.server",
    "logact.agent.core",
    "logact.agent.components",
)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_is_there(name: str) -> None:
    package = importlib.import_module(name)
    assert package.__all__, name
    assert sorted(package.__all__) == list(package.__all__), "keep __all__ sorted"
    missing = [attr for attr in package.__all__ if not hasattr(package, attr)]
    assert missing == []


def test_the_client_and_the_in_process_logs_share_the_protocols_api() -> None:
    from logact.client import Client, LogAPI
    from logact.protocol import LogAPI as ProtocolLogAPI
    from logact.server import LocalLog

    assert LogAPI is ProtocolLogAPI
    assert issubclass(Client, LogAPI) and issubclass(LocalLog, LogAPI)
