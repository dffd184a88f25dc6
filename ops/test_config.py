"""Cluster configurations on free loopback ports, with fixed tokens, for tests, benchmarks and
chaos runs (never for a deployment: ``config/cluster.toml`` and ``logact secrets init`` are)."""

from __future__ import annotations

import json
from pathlib import Path

from logact.agent.core.entries import FENCED_TYPES, ROLE_CLAIMS, ROLE_TYPES, VOTE_SIGNERS
from logact.ops.ports import free_ports

#: Agent entries are checked at the edge: no writer can append one its readers must skip.
AGENT_VALIDATOR = "logact.agent.core.entries:validate"


def agent_token(name: str) -> str:
    """The token of principal ``name`` in configs from write_local_config."""
    return f"{name}-token-0000"


ADMIN_TOKEN = agent_token("admin")
WRITER_TOKEN = agent_token("writer")
READER_TOKEN = agent_token("reader")


def agent_auth_lines() -> list[str]:
    """TOML for the agent roles of agent/core/entries.py: one principal per role, named after it,
    and
    one per voter kind that signs votes (``rule-voter``, ...). The principal ``voter`` signs
    for no kind: its votes are counted only by policies without signers."""
    lines: list[str] = []
    for role, types in ROLE_TYPES.items():
        lines += [f"[auth.roles.{role}]", f"append = {json.dumps(sorted(types))}"]
        if role in ROLE_CLAIMS:
            lines.append(f"claim = {json.dumps(sorted(ROLE_CLAIMS[role]))}")
        lines.append("")
    lines.append("[auth.fences]")
    lines += [f"{name} = {json.dumps(sorted(types))}" for name, types in FENCED_TYPES.items()]
    lines.append("")
    named = {role: role for role in ROLE_TYPES}
    named |= {signer: "voter" for signer in VOTE_SIGNERS.values() if signer not in ROLE_TYPES}
    for name, role in named.items():
        lines += [
            "[[auth.principals]]",
            f'name = "{name}"',
            f'token = "{agent_token(name)}"',
            f'roles = ["{role}"]',
            "",
        ]
    return lines


def write_local_config(
    directory: str | Path,
    *,
    nodes: int = 3,
    durability: str = "fsync",
    extra: str = "",
) -> Path:
    """Write a cluster config on free loopback ports (tests, benchmarks, chaos runs).

    Principals: ``admin`` (token ``admin-token-0000``), ``writer`` (``writer-token-0000``,
    may append only ``note``/``data``), ``reader`` (``reader-token-0000``), and one principal per
    LogAct agent role, named after it (``driver`` with token ``driver-token-0000``, ...), and one
    per signing voter kind (``rule-voter``, ...).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ports = free_ports(nodes * 2)
    lines = [
        'mode = "raft"',
        f'durability = "{durability}"',
        "",
        "[cluster]",
        'password = "test-cluster-password"',
        "",
    ]
    for index in range(nodes):
        lines += [
            "[[nodes]]",
            f'id = "n{index + 1}"',
            f'client = "127.0.0.1:{ports[2 * index]}"',
            f'raft = "127.0.0.1:{ports[2 * index + 1]}"',
            f'data_dir = "data/n{index + 1}"',
            "",
        ]
    lines += [
        "[auth]",
        f'validator = "{AGENT_VALIDATOR}"',
        "",
        "[auth.roles.admin]",
        'append = ["*"]',
        "admin = true",
        "",
        "[auth.roles.writer]",
        'append = ["note", "data"]',
        "",
        "[auth.roles.reader]",
        "append = []",
        "",
        "[[auth.principals]]",
        'name = "admin"',
        f'token = "{ADMIN_TOKEN}"',
        'roles = ["admin"]',
        "",
        "[[auth.principals]]",
        'name = "writer"',
        f'token = "{WRITER_TOKEN}"',
        'roles = ["writer"]',
        "",
        "[[auth.principals]]",
        'name = "reader"',
        f'token = "{READER_TOKEN}"',
        'roles = ["reader"]',
        "",
        *agent_auth_lines(),
        extra,
    ]
    path = directory / "cluster.toml"
    path.write_text("\n".join(lines))
    return path
