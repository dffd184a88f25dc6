"""A blocking facade over the trio client, for threads and scripts that do not use trio.

A private trio loop runs in a daemon thread; each method call hops onto it with
``trio.from_thread.run`` and blocks until the result (or typed error) comes back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import trio

from logact.client.client import Client
from logact.protocol.api import BusInfo, ReadResult, Tail
from logact.protocol.codec import Entry


class BlockingClient:
    def __init__(self, addresses: Sequence[str], token: str, **options: Any) -> None:
        self._client = Client(addresses, token, **options)
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="logact-client", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _main(self) -> None:
        async def run() -> None:
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            async with self._client:
                self._ready.set()
                await self._stop.wait()

        try:
            trio.run(run)
        except BaseException as exc:  # surfaced to the constructor if startup failed
            self._error = exc
            self._ready.set()

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return await fn(*args, **kwargs)

        return trio.from_thread.run(call, trio_token=self._token)

    def append(self, bus: str, type: str, body: Any, **kwargs: Any) -> int:
        return self._run(self._client.append, bus, type, body, **kwargs)

    def append_batch(self, bus: str, entries: Iterable[tuple[str, Any]], **kwargs: Any) -> range:
        return self._run(self._client.append_batch, bus, list(entries), **kwargs)

    def read(
        self, bus: str, start: int = 0, limit: int = 100, types: Any = None, **kw: Any
    ) -> ReadResult:
        return self._run(self._client.read, bus, start, limit, types, **kw)

    def read_all(self, bus: str, start: int = 0, types: Any = None) -> list[Entry]:
        return self._run(self._client.read_all, bus, start, types)

    def check_tail(self, bus: str, **kwargs: Any) -> Tail:
        return self._run(self._client.check_tail, bus, **kwargs)

    def trim(self, bus: str, before: int) -> int:
        return self._run(self._client.trim, bus, before)

    def claim(self, bus: str, name: str) -> int:
        return self._run(self._client.claim, bus, name)

    def list_buses(self) -> list[BusInfo]:
        return self._run(self._client.list_buses)

    def status(self) -> dict[str, Any]:
        return self._run(self._client.status)

    def subscribe(
        self,
        bus: str,
        from_pos: int = 0,
        types: Iterable[str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Iterator[Entry]:
        """Yield entries as they commit; each wait is bounded by ``timeout`` (None: forever)."""
        iterator = self._client.subscribe(bus, from_pos, types)

        async def next_entry() -> Entry:
            if timeout is None:
                return await iterator.__anext__()
            with trio.fail_after(timeout):
                return await iterator.__anext__()

        try:
            while True:
                yield trio.from_thread.run(next_entry, trio_token=self._token)
        finally:
            trio.from_thread.run(iterator.aclose, trio_token=self._token)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(timeout=10)

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
