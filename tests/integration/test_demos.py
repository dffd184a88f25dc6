"""``logact log-demo`` and ``logact demo`` end to end: each brings up its own 3-node cluster (on
free ports, from a written config), runs through a leader kill, passes its checks and shuts the
cluster down; ``logact demo`` with a model that never acts fails instead of passing vacuously."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logact.jepsen_tests.model_endpoint import serve
from logact.ops.test_config import write_local_config

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def logact(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    config = write_local_config(tmp_path / "config", durability="os")
    return subprocess.run(
        [sys.executable, "-m", "logact.cli.main", *args, "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )


def test_the_log_demo_survives_a_leader_kill_and_passes_its_checks(tmp_path: Path) -> None:
    done = logact(tmp_path, "log-demo", "--run-dir", "run", "--writers", "2", "--appends", "10")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kill -9 leader" in done.stdout and "all checks passed" in done.stdout
    assert done.stdout.count("  ok  ") == 5 and "FAIL" not in done.stdout
    assert "5. cluster down" in done.stdout


def test_the_agent_demo_vetoes_twice_survives_a_leader_kill_and_passes_its_checks(
    tmp_path: Path,
) -> None:
    done = logact(tmp_path, "demo", "--run-dir", "run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kill -9 leader" in done.stdout and "restarted" in done.stdout
    assert done.stdout.count("  ok  ") == 8 and "FAIL" not in done.stdout
    assert "all checks passed" in done.stdout and "6. cluster down" in done.stdout


def test_the_agent_demo_fails_when_the_model_never_acts(tmp_path: Path) -> None:
    """A real endpoint (``--llm env``) whose model only ever talks: nothing is proposed, so the
    demo must fail, not pass its checks on nothing."""
    with serve([{"content": "I would rather not touch anything."}]) as endpoint:
        done = logact(tmp_path, "demo", "--run-dir", "run", "--llm", "env", env=endpoint.env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL the model was called and proposed at least one action" in done.stdout
    assert "FAIL the agent acted" in done.stdout and "checks failed" in done.stdout
    assert "all checks passed" not in done.stdout and "Traceback" not in done.stderr
    assert "6. cluster down" in done.stdout
