"""Weak secrets: named, refused off loopback (tests/integration too); the shipped config's
secrets generated strong."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from logact.server import secrets_check
from logact.server.config import ConfigError, load_config
from logact.server.secret_files import ensure_secret_files

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


def test_the_shipped_config_gets_strong_secrets_of_its_own(
    shipped: Callable[[str], Path],
) -> None:
    """Every secret the shipped config names is generated: strong, distinct, owner-only."""
    path = shipped("cluster.toml")
    config = load_config(path)
    assert secrets_check.findings(config) == []
    assert not any(secrets_check.exposed(node) for node in config.nodes)
    files = sorted((path.parent / "secrets").iterdir())
    assert len(files) == len(config.tokens) + 1  # and the Raft password
    assert len({f.read_text() for f in files}) == len(files)
    assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
    assert (path.parent / "secrets").stat().st_mode & 0o777 == 0o700


def test_existing_secret_files_are_kept_and_missing_ones_named(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    shutil.copy(REPO / "config" / "cluster.toml", config)
    with pytest.raises(ConfigError, match="logact secrets init"):
        load_config(config)
    created = ensure_secret_files(config)
    admin = tmp_path / "secrets" / "admin.token"
    assert admin in created and len(created) > 2
    admin.write_text("rotated-admin-token-of-this-site\n")
    assert ensure_secret_files(config) == []
    principal = load_config(config).principal_for("rotated-admin-token-of-this-site")
    assert principal is not None and principal.name == "admin"


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
