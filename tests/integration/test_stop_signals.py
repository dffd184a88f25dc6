"""The commands that start a cluster of their own stop it when they are stopped (issue 17):
``logact demo``, ``log-demo``, ``chaos``, ``bench``, ``bench-snapshots`` and ``bench-memory``
run as real processes; once their node processes run, a SIGTERM (or Ctrl-C's SIGINT) must end
the command with one line on stderr and exit 143 (130), and every node process it started must
be gone — found by pid, from the command lines that name the test's directory. ``cluster up``
stopped before a leader is elected stops the nodes it started and fails."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from logact.ops.test_config import write_local_config

from .test_cli_truth import COMMAND_TIMEOUT, LOGACT, gone

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

#: How often the test looks again for a condition it waits for (processes, a line).
POLL_S = 0.05


def started_under(directory: Path, besides: int) -> set[int]:
    """Live processes (not ``besides``) whose command line names ``directory``: the nodes a
    command started there, which run in sessions of their own."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == besides:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        if str(directory) in argv and not gone(int(entry.name)):
            found.add(int(entry.name))
    return found


def wait_for(condition: Callable[[], bool], what: str, timeout: float = COMMAND_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(POLL_S)


def read_until(proc: subprocess.Popen[bytes], prefix: str) -> list[str]:
    """The child's stdout lines up to the first that starts with ``prefix``."""
    assert proc.stdout is not None
    fd, data, lines = proc.stdout.fileno(), b"", []
    deadline = time.monotonic() + COMMAND_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not any(line.startswith(prefix) for line in lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0 and selector.select(remaining), f"no {prefix!r}: {lines}"
            chunk = os.read(fd, 4096)
            assert chunk, f"stdout closed before {prefix!r}: {lines}"
            data += chunk
            *whole, data = data.split(b"\n")
            lines += [line.decode() for line in whole]
    return lines


@pytest.fixture
def command(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts ``logact ARGS`` in ``tmp_path``; kills it and anything it left at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        started.append(
            subprocess.Popen(
                [*LOGACT, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=tmp_path,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})},
            )
        )
        return started[-1]

    try:
        yield spawn
    finally:
        for proc in started:
            proc.kill()
            proc.wait(COMMAND_TIMEOUT)
            for pid in started_under(tmp_path, proc.pid):
                os.kill(pid, signal.SIGKILL)


def assert_stops_everything(
    proc: subprocess.Popen[bytes], tmp_path: Path, signum: signal.Signals = signal.SIGTERM
) -> str:
    """Signal ``proc`` once its three nodes run: it exits 128 + signum with one line on stderr,
    and every node is gone. What it printed on stdout meanwhile."""
    wait_for(lambda: len(started_under(tmp_path, proc.pid)) >= 3, "three node processes")
    nodes = started_under(tmp_path, proc.pid)
    proc.send_signal(signum)
    assert proc.wait(COMMAND_TIMEOUT) == 128 + signum
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()
    assert stderr.splitlines() == [f"stopped by {signum.name}"], stderr
    wait_for(lambda: all(gone(pid) for pid in nodes), f"the nodes {sorted(nodes)} gone")
    assert started_under(tmp_path, proc.pid) == set()
    return stdout


def config_in(tmp_path: Path) -> str:
    return str(write_local_config(tmp_path / "config", durability="os"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_stops_its_cluster_when_stopped(
    command: Callable[..., subprocess.Popen[bytes]], tmp_path: Path, signum: signal.Signals
) -> None:
    demo = command("demo", "--run-dir", "run", "--config", config_in(tmp_path))
    assert read_until(demo, "1. cluster up")
    stdout = assert_stops_everything(demo, tmp_path, signum)
    assert "6. cluster down" in stdout and "checks" not in stdout


def test_log_demo_stops_its_cluster_when_stopped(
    command: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    demo = command("log-demo", "--run-dir", "run", "--config", config_in(tmp_path),
                   "--appends", "100000")  # fmt: skip
    assert read_until(demo, "2. workload")
    assert "5. cluster down" in assert_stops_everything(demo, tmp_path)


def test_chaos_stops_its_cluster_when_stopped(
    command: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    chaos = command("chaos", "--nemesis", "pause:follower", "--time", "120", "--out", "out")
    assert_stops_everything(chaos, tmp_path)
    assert not (tmp_path / "out" / "log-seed1" / "result.json").exists()


def test_bench_stops_its_cluster_when_stopped(
    command: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    bench = command("bench", "--only", "logact", "--baseline", "none", "--entries-100b",
                    "1000000", "--run-dir", "run")  # fmt: skip
    assert_stops_everything(bench, tmp_path)


def test_bench_snapshots_stops_its_cluster_when_stopped(
    command: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # Its clusters live in a temporary directory: here, through TMPDIR.
    bench = command("bench-snapshots", "--state-mb", "1", "--seconds", "600",
                    env={"TMPDIR": str(tmp_path)})  # fmt: skip
    assert_stops_everything(bench, tmp_path)
    assert not (tmp_path / "bench-results").exists()


def test_bench_memory_stops_its_cluster_when_stopped(
    command: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    bench = command("bench-memory", "--mb", "4096", "--out", "out.json",
                    env={"TMPDIR": str(tmp_path)})  # fmt: skip
    assert_stops_everything(bench, tmp_path)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cluster_up_stopped_before_a_leader_stops_the_nodes_it_started(
    command: Callable[..., subprocess.Popen[bytes]], tmp_path: Path, signum: signal.Signals
) -> None:
    up = command("cluster", "up", "--config", config_in(tmp_path), "--run-dir", "run")
    wait_for(lambda: len(started_under(tmp_path, up.pid)) >= 3, "three node processes")
    nodes = started_under(tmp_path, up.pid)
    for pid in nodes:  # frozen before they can elect anyone: cluster up waits
        os.kill(pid, signal.SIGSTOP)
    up.send_signal(signum)
    assert up.wait(COMMAND_TIMEOUT) == 1
    assert up.stderr is not None and up.stdout is not None
    stderr = up.stderr.read().decode()
    assert stderr.startswith(f"error: stopped by {signum.name} before a leader was elected; ")
    assert stderr.count("\n") == 1 and "which it had started" in stderr, stderr
    assert all(f"(pid {pid})" in stderr for pid in nodes), stderr
    assert up.stdout.read() == b""
    wait_for(lambda: all(gone(pid) for pid in nodes), f"the nodes {sorted(nodes)} gone")
