"""Weak secrets: found in the shipped examples, refused off loopback (tests/integration too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from logact.server import secrets_check
from logact.server.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("short", "shorter than 16"),
        (" " * 20, "fewer than 4 distinct"),
        ("abababababababababab", "fewer than 4 distinct"),
        ("admin-token-change-me", "default"),
        ("my-Password-is-long-enough", "default"),
    ],
)
def test_weak_secrets_are_named(secret: str, problem: str) -> None:
    why = secrets_check.weak(secret)
    assert why is not None and problem in why


def test_a_random_secret_is_strong() -> None:
    assert secrets_check.weak("q7Vb2-Xw9Lk_4RtZpN8sYe") is None


def test_the_shipped_examples_are_all_weak_and_on_loopback() -> None:
    config = load_config(REPO / "config" / "cluster.toml")
    found = secrets_check.findings(config)
    assert any("cluster password" in f for f in found)
    assert sum("token of principal" in f for f in found) == len(config.tokens)
    assert not any(secrets_check.exposed(node) for node in config.nodes)
    assert all("change-me" not in f for f in found)  # secrets are named, never printed


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("node1.example", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert secrets_check.loopback(host) is loopback
