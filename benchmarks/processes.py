"""The processes the bench starts: load-generator workers, helper workers and LogAct clusters.

Every one of them is killed on every exit path (an error, Ctrl-C, SIGTERM cancelling the run):
workers in ``finally`` blocks, clusters by :func:`logact_cluster`. Workers and nodes run in
their own sessions, so only this code stops them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from logact.ops.local_cluster import LocalCluster, NodesExited
from logact.ops.test_config import write_local_config

READY_TIMEOUT_S = 60.0
#: How long a stopped worker may take to report and exit before it is killed.
GRACE_S = 20.0
SEQ_MAX_SECONDS = 60.0
#: Bound on starting a fresh cluster and electing its first leader.
CLUSTER_START_S = 60.0


class LineReader:
    """Newline-delimited JSON from a worker's stdout pipe."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def read_json(self) -> dict[str, Any]:
        while (end := self.buffer.find(b"\n")) < 0:
            data = await self.stream.receive_some(1 << 20)
            if not data:
                raise EOFError("worker exited before answering")
            self.buffer += data
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return json.loads(line)


def tail_lines(path: Path, lines: int = 8) -> str:
    """The end of a worker's log, to say why it failed."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


async def _send_line(proc: trio.Process, line: bytes) -> None:
    """A line on the worker's stdin; a worker that already exited simply does not get it."""
    assert proc.stdin is not None
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await proc.stdin.send_all(line)


async def run_workers(
    specs: list[dict[str, Any]],
    log_dir: Path,
    on_window: Callable[[float, float], Awaitable[dict[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Start one worker (``python -m logact.benchmarks.loadgen``) per spec, release them
    together, return their results.

    ``on_window(start, end)`` runs alongside (for CPU sampling of the servers) and its value is
    returned too. Workers are killed on any exit path, including Ctrl-C.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[trio.Process] = []
    err_paths: list[Path] = []
    try:
        for index, spec in enumerate(specs):
            err_path = log_dir / f"worker-{spec['target']}-{spec['mode']}-{index}.log"
            err_paths.append(err_path)
            with open(err_path, "wb") as err:
                procs.append(
                    await trio.lowlevel.open_process(
                        [sys.executable, "-m", "logact.benchmarks.loadgen", json.dumps(spec)],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        start_new_session=True,
                    )
                )
        readers = [LineReader(proc.stdout) for proc in procs]  # type: ignore[arg-type]
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                for reader in readers:
                    await reader.read_json()
        except (EOFError, trio.TooSlowError) as exc:
            details = "\n".join(tail_lines(p) for p in err_paths)
            raise RuntimeError(f"a load worker did not start: {exc!r}\n{details}") from None

        spec0 = specs[0]
        start_at = time.monotonic() + 0.3
        if spec0["mode"] == "seq":
            window = (start_at, start_at + SEQ_MAX_SECONDS)
            budget = SEQ_MAX_SECONDS + 30
        else:
            window = (
                start_at + spec0["warmup_s"],
                start_at + spec0["warmup_s"] + spec0["duration_s"],
            )
            budget = spec0["warmup_s"] + spec0["duration_s"] + 30
        go = (json.dumps({"start_at": start_at}) + "\n").encode()
        for proc in procs:
            await _send_line(proc, go)

        results: list[dict[str, Any]] = [{} for _ in procs]
        sampled: dict[str, Any] = {}

        async def collect(index: int) -> None:
            results[index] = await readers[index].read_json()

        async def sample() -> None:
            assert on_window is not None
            sampled.update(await on_window(*window))

        try:
            with trio.fail_after(budget):
                async with trio.open_nursery() as nursery:
                    if on_window is not None and spec0["mode"] != "seq":
                        nursery.start_soon(sample)
                    for index in range(len(procs)):
                        nursery.start_soon(collect, index)
        except (EOFError, trio.TooSlowError) as exc:
            details = "\n".join(tail_lines(p) for p in err_paths)
            raise RuntimeError(f"a load worker failed: {exc!r}\n{details}") from None
        return results, (sampled or None)
    finally:
        await _kill(procs)


async def _kill(procs: list[trio.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    with trio.CancelScope(shield=True), trio.move_on_after(10):
        for proc in procs:
            await proc.wait()


class LiveWorker:
    """A load worker that reports as it goes (a paced worker: each acknowledged append):
    ``reports`` holds every line so far, ``result`` its last line once stopped."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.result: dict[str, Any] | None = None
        self._news = trio.Event()

    def _add(self, report: dict[str, Any]) -> None:
        self.reports.append(report)
        self._news.set()
        self._news = trio.Event()

    async def wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait for reports until ``done()`` holds; False if it still does not after
        ``timeout`` seconds."""
        with trio.move_on_after(timeout):
            while not done():
                await self._news.wait()
            return True
        return False


@contextlib.asynccontextmanager
async def live_worker(spec: dict[str, Any], log_path: Path) -> AsyncIterator[LiveWorker]:
    """A load worker (``python -m logact.benchmarks.loadgen``), started at once; every line it
    prints goes into the yielded :class:`LiveWorker`. On the way out it is told to stop (a
    ``stop`` line), its final line is kept as ``result``, and it is killed."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as err:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "logact.benchmarks.loadgen", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    worker = LiveWorker()
    reader = LineReader(proc.stdout)  # type: ignore[arg-type]
    try:
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                await reader.read_json()
        except (EOFError, trio.TooSlowError) as exc:
            details = tail_lines(log_path)
            raise RuntimeError(f"a load worker did not start: {exc!r}\n{details}") from None
        await _send_line(proc, (json.dumps({"start_at": time.monotonic()}) + "\n").encode())

        async def read() -> None:
            with contextlib.suppress(EOFError):
                while True:
                    worker._add(await reader.read_json())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            yield worker
            await _send_line(proc, b"stop\n")
            with trio.move_on_after(GRACE_S):
                await proc.wait()
            nursery.cancel_scope.cancel()
        if worker.reports:
            worker.result = worker.reports[-1]
    finally:
        await _kill([proc])


@contextlib.asynccontextmanager
async def helper_process(argv: list[str], log_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A long-running helper (``python -m ...``) that prints one JSON line once it is ready;
    yields that line and kills the helper on the way out."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as err:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    try:
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                ready = await LineReader(proc.stdout).read_json()  # type: ignore[arg-type]
        except (EOFError, trio.TooSlowError) as exc:
            raise RuntimeError(
                f"{argv[0]} did not start: {exc!r}\n{tail_lines(log_path)}"
            ) from None
        yield ready
    finally:
        await _kill([proc])


@contextlib.asynccontextmanager
async def logact_cluster(
    directory: Path, durability: str, extra: str = ""
) -> AsyncIterator[tuple[LocalCluster, str]]:
    """A fresh 3-node LogAct cluster under ``directory`` (config of ``write_local_config``,
    ``extra`` TOML appended) and its leader; every node is killed on the way out."""
    config = write_local_config(directory, durability=durability, extra=extra)
    cluster = LocalCluster(config, directory / "run")
    try:
        cluster.start_all()
        try:
            leader = await cluster.wait_until_up(timeout=CLUSTER_START_S)
        except NodesExited as exc:
            raise RuntimeError(f"a fresh cluster's node exited: {exc}; {_logs(cluster)}") from None
        except trio.TooSlowError:
            raise RuntimeError(
                f"a fresh cluster was not up within {CLUSTER_START_S:g} s; {_logs(cluster)}"
            ) from None
        yield cluster, leader
    finally:
        cluster.kill_all()


def _logs(cluster: LocalCluster) -> str:
    return "; ".join(
        f"{node_id} log: {' | '.join(cluster.log_tail(node_id, 2)) or '-'}"
        for node_id in cluster.node_ids
    )


async def all_applied(cluster: LocalCluster, timeout: float) -> dict[str, dict[str, Any]]:
    """Every node's status once each answers and has applied all the leader had committed
    (a restarted node has caught up); RuntimeError naming the laggards after ``timeout``."""
    behind: list[str] = []
    with trio.move_on_after(timeout):
        while True:
            statuses = await cluster.statuses()
            nodes = {k: s["node"] for k, s in statuses.items() if s is not None}
            committed = [n["commit_index"] or 0 for n in nodes.values() if n["role"] == "leader"]
            if not committed:
                behind = ["no leader"]
            else:
                behind = [k for k in statuses if k not in nodes]
                behind += [k for k, n in nodes.items() if (n["last_applied"] or 0) < max(committed)]
            if not behind:
                return {k: s for k, s in statuses.items() if s is not None}
            await trio.sleep(0.1)
    raise RuntimeError(
        f"not every node applied the log within {timeout:g} s ({', '.join(behind)}); "
        f"{_logs(cluster)}"
    )
