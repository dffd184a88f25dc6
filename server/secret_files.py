"""Generating the secrets a configuration keeps in files, so no deployment runs on examples.

The shipped ``config/cluster.toml`` names a file for every principal's token and for the Raft
password instead of holding them. ``ensure_secret_files`` creates each missing one with 256
random bits, readable by its owner only (``0600`` in a ``0700`` directory); files that exist
are never touched, so rotating a secret is: replace its file, then restart the nodes.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Any


def secret_files(data: dict[str, Any], base: Path) -> list[Path]:
    """The ``password_file`` and ``token_file`` paths a parsed configuration names."""
    named: list[Any] = []
    cluster = data.get("cluster")
    if isinstance(cluster, dict):
        named.append(cluster.get("password_file"))
    auth = data.get("auth")
    principals = auth.get("principals") if isinstance(auth, dict) else None
    if isinstance(principals, list):
        named += [p.get("token_file") for p in principals if isinstance(p, dict)]
    return [base / name for name in named if isinstance(name, str) and name]


def ensure_secret_files(config_path: str | Path) -> list[Path]:
    """Create the secret files ``config_path`` names that do not exist yet; the created ones.

    A configuration that cannot be read is left to ``load_config`` to report.
    """
    path = Path(config_path).resolve()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    created = []
    for target in secret_files(data, path.parent):
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        created.append(target)
    return created
