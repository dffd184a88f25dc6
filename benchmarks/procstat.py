"""Per-process memory and CPU from /proc (Linux only; absent data becomes None).

CPU accounting matters on a 2-core machine: load generators, three nodes and anything else
running on the host share two cores, so every throughput figure is reported next to who used
the CPU during its window.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def memory_kib(pid: int) -> dict[str, int] | None:
    """VmRSS (current) and VmHWM (peak) of ``pid`` in KiB."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError:
        return None
    out = {}
    for key, name in (("VmRSS", "rss_kib"), ("VmHWM", "peak_rss_kib")):
        if key in fields:
            out[name] = int(fields[key].split()[0])
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of ``pid`` (all its threads) so far."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            rest = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields after the command name start at field 3 (state): utime is 14, stime is 15.
    return (int(rest[11]) + int(rest[12])) / CLOCK_TICKS


def system_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds summed over all cores since boot."""
    try:
        with open("/proc/stat") as handle:
            parts = [int(v) for v in handle.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    total = sum(parts[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuSnapshot:
    """CPU counters of named processes and of the whole machine at one instant."""

    per_pid: dict[str, float | None] = field(default_factory=dict)
    busy: float = 0.0
    total: float = 0.0

    @classmethod
    def take(cls, pids: dict[str, int | None]) -> CpuSnapshot:
        busy, total = system_busy_seconds()
        return cls(
            {name: cpu_seconds(pid) if pid else None for name, pid in pids.items()}, busy, total
        )


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float | None]:
    """CPU seconds used per named process between two snapshots, plus machine totals."""
    out: dict[str, float | None] = {}
    for name, start in before.per_pid.items():
        end = after.per_pid.get(name)
        out[name] = round(end - start, 3) if start is not None and end is not None else None
    out["machine_busy"] = round(after.busy - before.busy, 3)
    out["machine_capacity"] = round(after.total - before.total, 3)
    return out
