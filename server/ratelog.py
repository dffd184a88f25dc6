"""Logging that a flood of bad input cannot amplify.

Each kind of event (a bad frame, a failed hello, an internal error) is counted; its first
occurrence is logged at once, later ones at most once per ``interval`` as a count. Nothing a
client sent is ever formatted with ``repr`` into a line (a bignum or a megabyte of text would
make the log itself the attack), only what the caller summarises.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        counts: Counter[str] | None = None,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        #: Every event ever reported, by kind (e.g. the service's status counters).
        self.counts: Counter[str] = Counter() if counts is None else counts
        self._unlogged: Counter[str] = Counter()
        self._last: dict[str, float] = {}

    def event(
        self, kind: str, summary: str, *, level: int = logging.WARNING, exc_info: bool = False
    ) -> None:
        """Count one ``kind`` event; log it now if its kind has been quiet for ``interval``."""
        self.counts[kind] += 1
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._unlogged[kind] += 1
            return
        self._last[kind] = now
        suppressed = self._unlogged.pop(kind, 0)
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        self.logger.log(level, "%s: %s%s", kind, summary, more, exc_info=exc_info)
