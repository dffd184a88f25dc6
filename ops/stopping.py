"""Stopping a command that started processes, on SIGINT or SIGTERM, without leaving any behind.

Ctrl-C raises KeyboardInterrupt, in plain code and (where it is safe) under ``trio.run``, so
``finally`` blocks and context managers stop what was started. SIGTERM's default ends the
process at once instead: the node processes it started, each in its own session, would outlive
it. :func:`stop_on_signals` makes SIGTERM interrupt as Ctrl-C does, then runs the cleanup with
further signals noted rather than acted on, and raises :class:`Stopped` naming the first signal.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from trio.lowlevel import enable_ki_protection

T = TypeVar("T")

#: The signals that stop a command.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """The work was stopped by ``signal`` and its cleanup has run."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum)
        super().__init__(f"stopped by {self.signal.name}")

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal ended."""
        return 128 + self.signal.value


def interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is a KeyboardInterrupt, possibly wrapped in trio's exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return isinstance(exc, KeyboardInterrupt)


@enable_ki_protection
def _interrupt(ctrl_c: Callable[[int, FrameType | None], Any]) -> None:
    """Ctrl-C's handler, called from a frame trio sees as protected.

    trio's handler raises KeyboardInterrupt on the spot unless the frame it is given is
    protected, and then delivers it to the main task at its next checkpoint instead. The spot
    a signal lands on may be a weakref callback, whose exceptions Python prints and drops: the
    command then ran on after SIGTERM (seen in CI, "Exception ignored in ... _get_module_lock").
    Outside ``trio.run`` this is Python's own handler, which raises here, into the work.
    """
    ctrl_c(signal.SIGINT, sys._getframe())


def stop_on_signals(work: Callable[[], T], cleanup: Callable[[], object] = lambda: None) -> T:
    """``work()``'s result, ``cleanup()`` run after it whatever happens.

    SIGINT or SIGTERM during ``work`` interrupts it as Ctrl-C does (a KeyboardInterrupt, which
    ``trio.run`` delivers where it is safe); during ``cleanup`` they are only noted, so it
    finishes. Either way :class:`Stopped` is raised at the end, naming the first signal.

    Ctrl-C's handler is Python's own during ``work`` even if SIGINT was ignored (as in a job a
    script put in the background): ``trio.run`` delivers an interrupt safely only through it.
    """
    received: list[signal.Signals] = []

    def terminate(signum: int, frame: FrameType | None) -> None:
        if received:
            return
        received.append(signal.SIGTERM)
        ctrl_c = signal.getsignal(signal.SIGINT)
        if callable(ctrl_c):  # trio's handler inside trio.run, else Python's own
            _interrupt(ctrl_c)
        else:  # the work itself set SIGINT aside
            raise KeyboardInterrupt

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
    results: list[T] = []
    try:
        results.append(work())
    except BaseException as exc:
        if not interrupted(exc):
            raise
        if not received:
            received.append(signal.SIGINT)
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, note)
        try:
            cleanup()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if received:
        raise Stopped(received[0])
    return results[0]
