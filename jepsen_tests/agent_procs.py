"""Agent components as supervised OS processes (``logact agent <component> ...``).

Used by recovery tests and chaos runs: start a component, wait until it has replayed its bus
(its ``ready:`` line), SIGKILL / SIGSTOP it, restart it. Output goes to one file per start, so a
restart's readiness is never confused with an earlier incarnation's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

READY_PREFIX = "ready:"


class AgentProcess:
    """One agent component; ``args`` follow ``logact agent`` (e.g. ``["executor", "--bus", b]``)."""

    def __init__(
        self, name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None
    ):
        self.name = name
        self.args = args
        self.log_dir = log_dir
        self.env = env
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def output_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.starts}.out"

    def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "logact.cli.main", "agent", *self.args]
        env = {**os.environ, **(self.env or {})}
        with open(self.output_path, "wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def wait_ready(self, timeout: float = 90.0) -> str:
        """The ready line of the current incarnation; fails if the process exits first."""
        with trio.fail_after(timeout):
            while True:
                for line in self.output().splitlines():
                    if line.startswith(READY_PREFIX):
                        return line
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited before ready:\n{self.output()}")
                await trio.sleep(0.02)  # polling the process's output file

    async def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        with trio.fail_after(timeout):
            while (code := self.process.poll()) is None:
                await trio.sleep(0.02)
        return code

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    async def restart(self, timeout: float = 90.0) -> str:
        self.kill()
        self.start()
        return await self.wait_ready(timeout)


def kill_all(processes: list[AgentProcess]) -> None:
    for process in processes:
        process.signal(signal.SIGCONT)  # a stopped process must be able to die
        process.kill()
