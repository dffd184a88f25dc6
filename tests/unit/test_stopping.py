"""ops/stopping.py in a real child process: SIGTERM interrupts the work as Ctrl-C does (under
trio.run too, and when SIGINT is ignored), the cleanup runs to its end even when signalled
again, and the first signal is what the caller is told."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.process

#: Bound on the child starting up and on each line it owes.
LINE_TIMEOUT = 60.0

CHILD = """
import signal, sys, time
import trio
from logact.ops.stopping import Stopped, stop_on_signals

mode, sigint = sys.argv[1:]
if sigint == "ignored":
    signal.signal(signal.SIGINT, signal.SIG_IGN)

def work():
    print("ready", flush=True)
    if mode == "trio":
        trio.run(trio.sleep_forever)
    while True:
        time.sleep(1)

def cleanup():
    print("cleaning", flush=True)
    sys.stdin.readline()  # the test signals again meanwhile, then lets the cleanup end
    print("cleaned", flush=True)

try:
    stop_on_signals(work, cleanup)
except Stopped as stopped:
    print(f"{stopped}, exit {stopped.exit_code}", flush=True)
"""


def _line(proc: subprocess.Popen[bytes]) -> str:
    """The child's next line of stdout, within LINE_TIMEOUT."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + LINE_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0 and selector.select(remaining), f"no line yet: {data!r}"
            byte = os.read(fd, 1)
            assert byte, f"stdout closed: {data!r}"
            data += byte
    return data.decode().rstrip("\n")


@pytest.mark.parametrize("mode", ["trio", "plain"])
@pytest.mark.parametrize(
    ("signum", "sigint"),
    [(signal.SIGTERM, "default"), (signal.SIGINT, "default"), (signal.SIGTERM, "ignored")],
)
def test_a_signal_interrupts_the_work_and_the_cleanup_runs_to_its_end(
    mode: str, signum: signal.Signals, sigint: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, sigint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _line(proc) == "ready"
        proc.send_signal(signum)
        assert _line(proc) == "cleaning"
        proc.send_signal(signal.SIGTERM)  # noted, not acted on: the cleanup goes on
        assert proc.stdin is not None
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert _line(proc) == "cleaned"
        assert _line(proc) == f"stopped by {signum.name}, exit {128 + signum}"
        assert proc.wait(LINE_TIMEOUT) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait(LINE_TIMEOUT)


CALLBACK_CHILD = """
import os, signal, sys, weakref
import trio
from logact.ops.stopping import Stopped, stop_on_signals

class Thing:
    pass

def callback(_):
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):  # the handler runs here, in the callback's frame
        pass

async def main():
    print("ready", flush=True)
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    await trio.sleep_forever()

def cleanup():
    print("cleaning", flush=True)
    sys.stdin.readline()
    print("cleaned", flush=True)

try:
    stop_on_signals(lambda: trio.run(main), cleanup)
except Stopped as stopped:
    print(f"{stopped}, exit {stopped.exit_code}", flush=True)
"""


def test_a_signal_landing_in_a_weakref_callback_still_interrupts_the_work() -> None:
    """Python prints and drops an exception raised in a weakref callback: a KeyboardInterrupt
    raised there for SIGTERM was lost and the command ran on (a CI run's demo)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CALLBACK_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert _line(proc) == "ready"
        assert _line(proc) == "cleaning"
        assert proc.stdin is not None
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert _line(proc) == "cleaned"
        assert _line(proc) == "stopped by SIGTERM, exit 143"
        assert proc.wait(LINE_TIMEOUT) == 0
        assert proc.stderr is not None and proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait(LINE_TIMEOUT)
