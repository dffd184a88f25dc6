"""What the service needs from a log implementation, and the in-memory one.

A backend owns a ``LogState`` and makes batches of commands durable (or replicated) before
applying them, in order. It is the replication edge: commands travel in their replicated form
(``replicated_form``) and every replica applies what it parses back. Readers take ``lock``
around every access because the Raft backend applies on PySyncObj's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from logact.server.command_types import Command, Reply
from logact.server.replicated_form import replicated_batch
from logact.server.state import LogState


class Backend(Protocol):
    lock: threading.Lock
    #: How many batches the group committer may have in flight at once.
    max_inflight: int
    durability: str

    @property
    def state(self) -> LogState:
        """The log state this node applies commands to (read under ``lock``)."""
        ...

    async def replicate(self, cmds: list[Command]) -> list[Reply]: ...

    def set_listener(self, listener: Callable[[], None]) -> None:
        """``listener`` is called (possibly from another thread) after every applied batch."""

    def describe(self) -> dict[str, Any]:
        """Role, leader and progress of this node, for status."""
        ...


class MemoryBackend:
    """Volatile, single process: for tests and as the reference implementation.

    Commands go through their replicated form as on any replica, so it answers exactly as Raft
    would (a command that cannot be replicated is refused alike).
    """

    max_inflight = 1
    durability = "none"

    def __init__(self, state: LogState | None = None) -> None:
        self.state = state or LogState()
        self.lock = threading.Lock()
        self._listener: Callable[[], None] = lambda: None

    async def replicate(self, cmds: list[Command]) -> list[Reply]:
        replicated = replicated_batch(cmds)
        with self.lock:
            replies = self.state.apply_replicated_batch(replicated)
        self._listener()
        return replies

    def set_listener(self, listener: Callable[[], None]) -> None:
        self._listener = listener

    def describe(self) -> dict[str, Any]:
        return {"mode": "memory", "role": "leader", "applied": self.state.applied}
