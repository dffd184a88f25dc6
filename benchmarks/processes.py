"""The processes the bench starts: load-generator workers, each killed on every exit path (an
error, Ctrl-C, SIGTERM cancelling the run). Workers run in their own sessions, so only this code
stops them.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

READY_TIMEOUT_S = 60.0
SEQ_MAX_SECONDS = 60.0


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
