"""``logact log-demo`` and ``logact demo`` end to end: each brings up its own 3-node cluster (on
free ports, from a written config), runs through a leader kill, passes its checks and shuts the
cluster down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from logact.ops.test_config import write_local_config

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def logact(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = write_local_config(tmp_path / "config", durability="os")
    return subprocess.run(
        [sys.executable, "-m", "logact.cli.main", *args, "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
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
    assert done.stdout.count("  ok  ") == 7 and "FAIL" not in done.stdout
    assert "all checks passed" in done.stdout and "6. cluster down" in done.stdout
