"""Group commit: many concurrent requests become one replicated batch.

While one batch is being made durable the next one fills up, so a single fsync / Raft round
trip is shared by every request that arrived meanwhile. Linearizable reads ride along as
barriers: a read waits for a batch that was submitted after the read arrived, then reads the
local state, which by then reflects every write acknowledged before the read began.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from logact.protocol.errors import LogError, Timeout, Unavailable
from logact.server.command_types import Append, Barrier, Command, Done, Reply

Replicate = Callable[[list[Command]], Awaitable[list[Reply]]]
BARRIER = Barrier()
BARRIER_DONE = Done()


class _Run:
    """The commands of one ``submit``/``submit_all`` call: one event for all of them.

    An event per command cost a trio checkpoint per command when the caller collected them
    (64 scheduler passes for a 64-append ``multi``, issue 18)."""

    __slots__ = ("done", "left", "outcomes")

    def __init__(self, size: int) -> None:
        self.done = trio.Event()
        self.left = size
        self.outcomes: list[Reply | LogError | None] = [None] * size

    def settle(self, index: int, outcome: Reply | LogError) -> None:
        self.outcomes[index] = outcome
        self.left -= 1
        if not self.left:
            self.done.set()


#: A pending command: (command, or None for a barrier; its run; its index in the run).
_Pending = tuple[Command | None, _Run, int]


class GroupCommitter:
    def __init__(
        self,
        replicate: Replicate,
        *,
        max_inflight: int = 4,
        max_batch: int = 4096,
        max_batch_bytes: int = 8 * 1024 * 1024,
        timeout: float = 10.0,
    ) -> None:
        self._replicate = replicate
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._timeout = timeout
        #: Batches that may still be started while others are in flight.
        self._free = max_inflight
        self._pending: list[_Pending] = []
        self._nursery: trio.Nursery | None = None
        #: A flush is started but has not yet taken its batch (it takes all that is pending).
        self._starting = False
        self.batches = 0  # counters for status / benchmarks
        self.commands = 0

    async def submit(self, cmd: Command) -> Reply:
        """Replicate one command; its reply, or Timeout when the outcome is unknown."""
        (outcome,) = await self._wait([cmd])
        if isinstance(outcome, LogError):
            raise outcome
        return outcome

    async def submit_all(self, cmds: Sequence[Command]) -> list[Reply | LogError]:
        """Replicate commands that arrived together (a client's ``multi``), queued as one run so
        they share a batch: each gets its own reply or error (Timeout when unknown)."""
        return await self._wait(cmds)

    async def barrier(self) -> None:
        (outcome,) = await self._wait([None])
        if isinstance(outcome, LogError):
            raise outcome

    async def _wait(self, cmds: Sequence[Command | None]) -> list[Reply | LogError]:
        if not cmds:
            return []  # a multi whose every append was refused: nothing would settle the run
        run = _Run(len(cmds))
        self._pending.extend((cmd, run, index) for index, cmd in enumerate(cmds))
        self._start_flush()
        with trio.move_on_after(self._timeout):
            await run.done.wait()
        if run.left:
            timeout = Timeout(
                f"no outcome within {self._timeout:.1f}s; the operation may have applied"
            )
            return [timeout if outcome is None else outcome for outcome in run.outcomes]
        return run.outcomes  # type: ignore[return-value]  # all settled: no None left

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                self._start_flush()  # work submitted before the committer ran
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def _start_flush(self) -> None:
        """Start a flush of what is pending if a batch may start and none is about to.

        Started by the submitter itself, not by a dispatcher task: that task's wake-up and
        the semaphore it took cost two trio scheduler passes per batch (issue 18). The flush
        takes its batch when it runs, so everything submitted meanwhile joins it.
        """
        if self._starting or not self._pending or not self._free or self._nursery is None:
            return
        self._free -= 1
        self._starting = True
        self._nursery.start_soon(self._flush)

    def _take_batch(self) -> list[_Pending]:
        """The longest prefix of pending work within the count and byte caps (at least one)."""
        size = 0
        count = 0
        for cmd, _, _ in self._pending:
            size += _command_bytes(cmd)
            if count and (count >= self._max_batch or size > self._max_batch_bytes):
                break
            count += 1
        batch = self._pending[:count]
        del self._pending[:count]
        return batch

    async def _flush(self) -> None:
        self._starting = False
        batch = self._take_batch()
        self._start_flush()  # what the caps left out, if another batch may start
        try:
            cmds = [cmd for cmd, _, _ in batch if cmd is not None] or [BARRIER]
            self.batches += 1
            self.commands += len(cmds)
            try:
                replies = await self._replicate(cmds)
            except Exception as exc:
                error = (
                    exc if isinstance(exc, LogError) else Unavailable(f"replication failed: {exc}")
                )
                for _, run, index in batch:
                    run.settle(index, error)
                return
            replies_iter = iter(replies)
            for cmd, run, index in batch:
                run.settle(index, BARRIER_DONE if cmd is None else next(replies_iter))
        finally:
            self._free += 1
            self._start_flush()


def _command_bytes(cmd: Command | None) -> int:
    if not isinstance(cmd, Append):
        return 64
    return 64 + sum(entry.size + 32 for entry in cmd.entries)
