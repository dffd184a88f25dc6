"""Run every phase against every system and collect one results document.

Systems, each measured alone (never two at once, so they do not share the two cores):
- ``logact``: the 3-node Raft cluster as separate processes, driven over TCP;
- ``embedded_tcp``: one embedded (non-replicated) node process over the same protocol and client,
  which separates the cost of Raft from the cost of the client, protocol and service;
- ``embedded``: the embedded log in this process (``open_embedded``), no network: the floor for
  latency and the ceiling for one Python process;
- ``etcd``: a 3-member etcd cluster driven by ``aetcd`` workers, when available.

Phases per system: sequential appends (one outstanding) at 100 B and 10 KB, then a fixed-duration
window with N concurrent appenders per load shape (P worker processes x N/P tasks).

LogAct's own phases (``--phase``), each on a fresh cluster of its own after the systems, each
with a baseline or physical bound measured in the same run: decision latency with the agent's
gate running, failover after kill -9 of the leader, full restart with a large log, fan-out to
many subscribers (benchmarks/phase_*.py).
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from logact.benchmarks import etcd as etcd_mod
from logact.benchmarks import phase_decision, phase_failover, phase_fanout, phase_restart
from logact.benchmarks.loadgen import Payloads, concurrent, sequential
from logact.benchmarks.phase_report import phase_line
from logact.benchmarks.processes import SEQ_MAX_SECONDS, run_workers
from logact.benchmarks.procstat import CpuSnapshot, cpu_delta, cpu_seconds, memory_kib
from logact.benchmarks.stats import median_tree, percentile, summarize_us
from logact.ops.local_cluster import LocalCluster
from logact.ops.ports import free_ports
from logact.ops.test_config import ADMIN_TOKEN, write_local_config

SIZES: dict[str, int] = {"100B": 100, "10KB": 10 * 1024}
#: Phases run on every system (the default), and LogAct's own phases, in the order they run.
SYSTEM_PHASES = ("sequential", "throughput")
LOGACT_PHASES = ("decision", "fanout", "failover", "restart")

Log = Callable[[str], None]


@dataclass
class Settings:
    entries_100b: int = 2000
    entries_10kb: int = 1000
    duration: float = 5.0
    warmup: float = 1.0
    concurrency: int = 64
    durability: str = "fsync"
    baseline: str = "etcd"
    procs: tuple[int, ...] = (1, 4)
    client_batching: bool = True  # LogAct's client sends concurrent appends as multis
    run_dir: Path | None = None
    keep_run_dir: bool = False
    repeat: int = 1
    systems: tuple[str, ...] = ("logact", "embedded_tcp", "embedded", "etcd")
    phases: tuple[str, ...] = SYSTEM_PHASES
    decision_intents: int = 200
    failover_kills: int = 3
    restart_entries: int = 20_000
    restart_entry_bytes: int = 1000
    restart_build_seconds: float = 600.0
    fanout_subscribers: int = 100
    fanout_messages: int = 500

    def seq_count(self, size_name: str) -> int:
        return self.entries_100b if size_name == "100B" else self.entries_10kb


def merge_load(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum worker results into one phase result (throughput and merged latency samples)."""
    ops = sum(r["ops"] for r in results)
    window = max(r["window_s"] for r in results)
    latencies = [lat for r in results for lat in r["latencies_us"]]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    cpu = [r["cpu_s"] for r in results if r.get("cpu_s") is not None]
    return {
        "ops": ops,
        "window_s": window,
        "ops_per_s": round(ops / window, 1) if window > 0 else None,
        "latency": summarize_us(latencies),
        "errors": dict(errors),
        "client_cpu_s": round(sum(cpu), 3) if cpu else None,
    }


def cpu_breakdown(
    delta: dict[str, float | None],
    server_names: list[str],
    client_cpu: float | None,
    ops: int,
    leader: str | None = None,
) -> dict[str, Any]:
    """Who used the CPU in a window: servers (the leader among them), load generators, and
    everything else."""
    servers = {name: delta.get(name) for name in server_names}
    server_total = sum(v for v in servers.values() if v is not None)
    leader_cpu = servers.get(leader) if leader is not None else None
    bench = delta.get("bench") or 0.0
    busy = delta.get("machine_busy") or 0.0
    capacity = delta.get("machine_capacity") or 0.0
    clients = client_cpu or 0.0
    return {
        "servers_s": servers,
        "servers_total_s": round(server_total, 3),
        "clients_s": round(clients, 3),
        "bench_s": round(bench, 3),
        "other_s": round(max(0.0, busy - server_total - clients - bench), 3),
        "machine_busy_pct": round(100 * busy / capacity, 1) if capacity else None,
        "server_cpu_us_per_append": round(server_total / ops * 1e6, 1) if ops else None,
        "leader_cpu_us_per_append": (
            round(leader_cpu / ops * 1e6, 1) if ops and leader_cpu is not None else None
        ),
        "client_cpu_us_per_append": round(clients / ops * 1e6, 1) if ops and client_cpu else None,
    }


def describe_error(exc: BaseException) -> str:
    """One line per leaf exception (trio wraps task failures in exception groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe_error(sub) for sub in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------- systems
class System:
    """A server-side system under test, started as processes and driven by workers."""

    key = ""
    label = ""
    durability = ""
    leader: str | None = None  # the name of the leader's process, once started

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    async def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def base_spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def server_pids(self) -> dict[str, int]:
        raise NotImplementedError

    async def counters(self) -> dict[str, float]:
        """Monotonic server counters (batches, commands, fsyncs) for per-phase deltas."""
        return {}

    async def info(self) -> dict[str, Any]:
        return {}

    def memory(self) -> dict[str, Any]:
        return {name: memory_kib(pid) for name, pid in self.server_pids().items()}


class LogactSystem(System):
    """The LogAct cluster (``raft``, 3 nodes) or one embedded node process (``embedded``)."""

    def __init__(
        self, run_dir: Path, durability: str, mode: str, client_batching: bool = True
    ) -> None:
        super().__init__(run_dir)
        self.client_batching = client_batching
        self.mode = mode
        self.durability = durability
        self.key = "logact" if mode == "raft" else "embedded_tcp"
        self.label = (
            "LogAct 3-node Raft" if mode == "raft" else "LogAct embedded node (TCP, 1 process)"
        ) + ("" if client_batching else ", client batching off")
        config = (
            write_local_config(run_dir, durability=durability, extra=BENCH_LIMITS)
            if mode == "raft"
            else _write_embedded_config(run_dir, durability)
        )
        self.cluster = LocalCluster(config, run_dir)
        self.leader: str | None = None

    async def start(self) -> None:
        self.cluster.start_all()
        if self.mode == "raft":
            self.leader = await self.cluster.wait_for_leader(timeout=30)
        else:
            self.leader = self.cluster.node_ids[0]
            await self.cluster.wait_until_serving(self.leader, timeout=30)

    def stop(self) -> None:
        self.cluster.kill_all()

    def base_spec(self) -> dict[str, Any]:
        return {
            "target": "logact",
            "addresses": self.cluster.addresses,
            "token": ADMIN_TOKEN,
            "coalesce": self.client_batching,
        }

    def server_pids(self) -> dict[str, int]:
        pids = {nid: self.cluster.pid(nid) for nid in self.cluster.node_ids}
        return {nid: pid for nid, pid in pids.items() if pid is not None}

    async def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for node_id, status in (await self.cluster.statuses()).items():
            if status is None:
                continue
            out[f"{node_id}.fsyncs"] = status["node"].get("journal_syncs", 0)
            if node_id == self.leader:
                out["batches"] = status["group_commit"]["batches"]
                out["commands"] = status["group_commit"]["commands"]
                counters = status.get("counters") or {}
                out["multi_requests"] = counters.get("multi_requests", 0)
                out["multi_appends"] = counters.get("multi_appends", 0)
        if self.mode != "raft":
            out[f"{self.leader}.fsyncs"] = out.get("batches", 0)  # one fdatasync per WAL batch
        return out

    async def info(self) -> dict[str, Any]:
        assert self.leader is not None
        status = await self.cluster.node_status(self.leader)
        return {
            "leader": self.leader,
            "log": status["log"] if status else None,
            "durability_reported": status["durability"] if status else None,
        }


#: A 10 KB load window writes ~300 MB to its bus on a fast hour, past the default bus quota
#: (256 MiB): the bench's clusters measure appends, not quotas.
BENCH_LIMITS = "[limits]\nmax_bus_bytes = 2147483648\nmax_principal_bytes = 4294967296\n"


def _write_embedded_config(directory: Path, durability: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    port = free_ports(1)[0]
    path = directory / "cluster.toml"
    path.write_text(
        "\n".join(
            [
                'mode = "embedded"',
                f'durability = "{durability}"',
                "[[nodes]]",
                'id = "e1"',
                f'client = "127.0.0.1:{port}"',
                'data_dir = "data/e1"',
                "[auth.roles.admin]",
                'append = ["*"]',
                "admin = true",
                "[[auth.principals]]",
                'name = "admin"',
                f'token = "{ADMIN_TOKEN}"',
                'roles = ["admin"]',
                "",
            ]
        )
        + BENCH_LIMITS
    )
    return path


class EtcdSystem(System):
    key = "etcd"
    durability = "fsync (always: etcd fsyncs its WAL before acknowledging)"

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.cluster = etcd_mod.EtcdCluster(run_dir)
        self.label = f"etcd {etcd_mod.etcd_version() or '?'} 3 members"
        self.leader: str | None = None

    async def start(self) -> None:
        self.cluster.start()
        await trio.to_thread.run_sync(self.cluster.wait_healthy, 30.0)
        self.leader = await trio.to_thread.run_sync(self.cluster.leader)

    def stop(self) -> None:
        self.cluster.kill_all()

    def base_spec(self) -> dict[str, Any]:
        assert self.leader is not None
        # Straight to the leader, as the LogAct client does; a follower would add a hop.
        return {"target": "etcd", "endpoint": self.cluster.endpoint(self.leader)}

    def server_pids(self) -> dict[str, int]:
        return self.cluster.pids()

    async def counters(self) -> dict[str, float]:
        assert self.leader is not None
        wanted = (
            "etcd_disk_wal_fsync_duration_seconds_count",
            "etcd_server_proposals_committed_total",
        )
        raw = await trio.to_thread.run_sync(self.cluster.metrics, self.leader, wanted)
        return {
            f"{self.leader}.fsyncs": raw.get(wanted[0], 0.0),
            "batches": raw.get(wanted[0], 0.0),  # Raft Ready loops that hit the disk
            "commands": raw.get(wanted[1], 0.0),
        }

    async def info(self) -> dict[str, Any]:
        return {"leader": self.leader}


# ---------------------------------------------------------------------------- phases
def _batching(before: dict[str, float], after: dict[str, float], ops: int) -> dict[str, Any]:
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    batches = delta.get("batches") or 0
    fsyncs = {k.split(".")[0]: v for k, v in delta.items() if k.endswith(".fsyncs")}
    most = max(fsyncs.values(), default=0)
    requests = delta.get("multi_requests") or 0
    return {
        "appends_per_request": (
            round(delta.get("multi_appends", 0) / requests, 1) if requests else None
        ),
        "commands_per_batch": round(delta.get("commands", 0) / batches, 1) if batches else None,
        "fsyncs": fsyncs,
        "appends_per_fsync": round(ops / most, 1) if most else None,
    }


async def _counters_safe(system: System) -> dict[str, float]:
    try:
        with trio.fail_after(10):
            return await system.counters()
    except Exception:
        return {}


async def sequential_phase(
    system: System, settings: Settings, size_name: str, log: Log
) -> dict[str, Any]:
    spec = {
        **system.base_spec(),
        "mode": "seq",
        "size": SIZES[size_name],
        "bus": f"bench-seq-{size_name.lower()}",
        "seed": 1,
        "warmup_ops": 100 if size_name == "100B" else 50,
        "count": settings.seq_count(size_name),
        "max_seconds": SEQ_MAX_SECONDS,
    }
    server_pids: dict[str, int | None] = {**system.server_pids()}
    before = await _counters_safe(system)
    first = CpuSnapshot.take(server_pids)
    results, _ = await run_workers([spec], system.run_dir / "logs")
    cpu = cpu_delta(first, CpuSnapshot.take(server_pids))
    after = await _counters_safe(system)
    result = results[0]
    summary = summarize_us(result["latencies_us"])
    out = {**summary, "errors": result["errors"], **_batching(before, after, result["ops"])}
    # Per append of the whole run, warm-up included: the servers did all of it.
    out["cpu"] = cpu_breakdown(
        cpu, list(server_pids), None, spec["warmup_ops"] + result["ops_total"], system.leader
    )
    log(
        f"  {system.key:<13} sequential {size_name:>4}: p50 {summary['p50_ms']} ms, "
        f"p99 {summary['p99_ms']} ms ({summary['samples']} appends)"
    )
    return out


async def load_phase(
    system: System, settings: Settings, size_name: str, procs: int, log: Log
) -> dict[str, Any]:
    per_proc = [
        settings.concurrency // procs + (1 if i < settings.concurrency % procs else 0)
        for i in range(procs)
    ]
    specs = [
        {
            **system.base_spec(),
            "mode": "load",
            "size": SIZES[size_name],
            # A bus per shape: two shapes of 10 KB at ~3,000/s outgrow one bus's 256 MiB quota.
            "bus": f"bench-load-{size_name.lower()}-{procs}p",
            "seed": 1000 * procs + index,
            "warmup_ops": 5,
            "concurrency": tasks,
            "warmup_s": settings.warmup,
            "duration_s": settings.duration,
        }
        for index, tasks in enumerate(per_proc)
        if tasks > 0
    ]
    server_pids = system.server_pids()

    async def on_window(start: float, end: float) -> dict[str, Any]:
        pids: dict[str, int | None] = {**server_pids, "bench": os.getpid()}
        await trio.sleep(max(0.0, start - time.monotonic()))
        first = CpuSnapshot.take(pids)
        await trio.sleep(max(0.0, end - time.monotonic()))
        return cpu_delta(first, CpuSnapshot.take(pids))

    before = await _counters_safe(system)
    results, cpu = await run_workers(specs, system.run_dir / "logs", on_window)
    after = await _counters_safe(system)
    merged = merge_load(results)
    shape = f"{len(specs)}x{max(per_proc)}"
    merged["shape"] = shape
    merged["cpu"] = cpu_breakdown(
        cpu or {}, list(server_pids), merged["client_cpu_s"], merged["ops"], system.leader
    )
    merged.update(_batching(before, after, merged["ops"]))
    log(
        f"  {system.key:<13} {settings.concurrency} appenders {size_name:>4} [{shape}]: "
        f"{merged['ops_per_s']:,.0f} appends/s, p50 {merged['latency']['p50_ms']} ms, "
        f"p99 {merged['latency']['p99_ms']} ms"
        + (f", errors {merged['errors']}" if merged["errors"] else "")
    )
    return merged


async def measure_system(system: System, settings: Settings, log: Log) -> dict[str, Any]:
    """All phases on one started system; the system is always killed afterwards."""
    out: dict[str, Any] = {"label": system.label, "durability": system.durability}
    try:
        log(f"starting {system.label} ...")
        await system.start()
        out["memory_at_start"] = system.memory()
        out["info"] = await system.info()
        out["sequential"] = {}
        for size_name in SIZES if "sequential" in settings.phases else ():
            out["sequential"][size_name] = await sequential_phase(system, settings, size_name, log)
        out["throughput"] = {}
        for size_name in SIZES if "throughput" in settings.phases else ():
            shapes: dict[str, Any] = {}
            for procs in settings.procs:
                result = await load_phase(system, settings, size_name, procs, log)
                shapes[result["shape"]] = result
            best = max(shapes, key=lambda s: shapes[s]["ops_per_s"] or 0)
            out["throughput"][size_name] = {"shapes": shapes, "best": best}
        out["memory_after_run"] = system.memory()
        out["info"] = await system.info()
    except Exception as exc:
        out["error"] = describe_error(exc)
        log(f"[red]  {system.key} failed:[/red] {out['error']}")
    finally:
        system.stop()
    return out


async def measure_in_process(settings: Settings, data_dir: Path, log: Log) -> dict[str, Any]:
    """The embedded log in this very process, with the same phases (1 process shape only)."""
    from logact.server.local import open_embedded

    out: dict[str, Any] = {
        "label": "embedded in-process (no network)",
        "durability": settings.durability,
        "sequential": {},
        "throughput": {},
    }
    async with open_embedded(data_dir, durability=settings.durability) as local:
        committer = local.service.committer
        for size_name, size in SIZES.items() if "sequential" in settings.phases else ():
            payloads = Payloads(size, 7)
            bus = f"bench-seq-{size_name.lower()}"

            async def append(payload: bytes, bus: str = bus) -> object:
                return await local.append(bus, "data", payload)

            for _ in range(100):
                await append(payloads.next())
            batches0 = committer.batches
            result = await sequential(
                append, payloads, settings.seq_count(size_name), SEQ_MAX_SECONDS
            )
            summary = summarize_us(result["latencies_us"])
            fsyncs = committer.batches - batches0
            out["sequential"][size_name] = {
                **summary,
                "errors": result["errors"],
                "appends_per_fsync": round(result["ops"] / fsyncs, 1) if fsyncs else None,
            }
            log(
                f"  {'embedded':<13} sequential {size_name:>4}: p50 {summary['p50_ms']} ms, "
                f"p99 {summary['p99_ms']} ms"
            )
        for size_name, size in SIZES.items() if "throughput" in settings.phases else ():
            payloads = Payloads(size, 8)
            bus = f"bench-load-{size_name.lower()}"

            async def append(payload: bytes, bus: str = bus) -> object:
                return await local.append(bus, "data", payload)

            before = (committer.batches, committer.commands, cpu_seconds(os.getpid()) or 0.0)
            result = await concurrent(
                append,
                payloads,
                settings.concurrency,
                time.monotonic() + 0.05,
                settings.warmup,
                settings.duration,
            )
            merged = merge_load([result])
            batches = committer.batches - before[0]
            merged["shape"] = f"1x{settings.concurrency} (in-process)"
            merged["commands_per_batch"] = (
                round((committer.commands - before[1]) / batches, 1) if batches else None
            )
            merged["appends_per_fsync"] = round(merged["ops"] / batches, 1) if batches else None
            process_cpu = (cpu_seconds(os.getpid()) or 0.0) - before[2]
            merged["cpu"] = {
                "process_total_s": round(process_cpu, 3),
                "note": "server and load share this process; includes warm-up",
            }
            out["throughput"][size_name] = {
                "shapes": {merged["shape"]: merged},
                "best": merged["shape"],
            }
            log(
                f"  {'embedded':<13} {settings.concurrency} appenders {size_name:>4}: "
                f"{merged['ops_per_s']:,.0f} appends/s, p50 {merged['latency']['p50_ms']} ms"
            )
    return out


def fsync_probe(directory: Path, count: int = 200) -> dict[str, Any]:
    """p50/p99 of write(100 B)+fdatasync here: the floor under any fsync-mode latency."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    samples = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            samples.append((time.perf_counter() - began) * 1e6)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    samples.sort()
    return {
        "p50_ms": round(percentile(samples, 50) / 1000, 3),
        "p99_ms": round(percentile(samples, 99) / 1000, 3),
    }


def environment(run_dir: Path) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            from importlib.metadata import version as v

            return v(name)
        except Exception:
            return None

    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "packages": {p: version(p) for p in ("logact", "pysyncobj", "trio", "cbor2", "aetcd")},
        "fdatasync_100b": fsync_probe(run_dir),
    }


def median_doc(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-leaf median over rounds of one system's results (strings etc. from the first round).

    On a shared 2-core machine single runs are noisy; the median of a few rounds is what we
    quote. The best load shape is re-chosen from the medians.
    """
    ok = [r for r in rounds if "error" not in r]
    if not ok:
        return rounds[0]
    merged = median_tree(ok)
    for entry in (merged.get("throughput") or {}).values():
        shapes = entry["shapes"]
        entry["best"] = max(shapes, key=lambda s: shapes[s].get("ops_per_s") or 0)
    merged["rounds"] = len(ok)
    if len(ok) < len(rounds):
        merged["failed_rounds"] = [r["error"] for r in rounds if "error" in r]
    return merged


SYSTEM_ORDER = ("logact", "etcd", "embedded_tcp", "embedded")


async def _measure_round(
    settings: Settings, base: Path, log: Log, index: int = 0
) -> dict[str, dict[str, Any]]:
    """One measurement of every selected system, one after another (never two at once).

    The order rotates with ``index`` so that, over several rounds, no system always gets the
    same slot while other work on a shared machine comes and goes.
    """
    out: dict[str, dict[str, Any]] = {}
    base.mkdir(parents=True, exist_ok=True)
    shift = index % len(SYSTEM_ORDER)
    for key in SYSTEM_ORDER[shift:] + SYSTEM_ORDER[:shift]:
        if key not in settings.systems or not set(SYSTEM_PHASES) & set(settings.phases):
            continue
        if key == "etcd":
            if settings.baseline != "etcd":
                continue
            reason = etcd_mod.unavailable_reason()
            if reason is not None:
                log(f"[yellow]{reason}: etcd baseline skipped[/yellow]")
                out[key] = {"skipped": reason}
                continue
        probe = fsync_probe(base)
        if key == "embedded":
            log("starting embedded in-process log ...")
            result = await measure_in_process(settings, base / "embedded-inproc", log)
        elif key == "etcd":
            result = await measure_system(EtcdSystem(base / "etcd"), settings, log)
        else:
            mode = "raft" if key == "logact" else "embedded"
            result = await measure_system(
                LogactSystem(base / key, settings.durability, mode, settings.client_batching),
                settings,
                log,
            )
        result["fdatasync_100b_before"] = probe
        out[key] = result
    return out


def _etcd_baseline(settings: Settings) -> tuple[bool, dict[str, Any] | None]:
    """Whether the phases measure etcd too; if it was asked for but cannot run, why not."""
    if settings.baseline != "etcd" or "etcd" not in settings.systems:
        return False, None
    reason = etcd_mod.unavailable_reason()
    return reason is None, None if reason is None else {"skipped": reason}


async def _logact_phase(name: str, settings: Settings, directory: Path) -> dict[str, Any]:
    with_etcd, skipped = _etcd_baseline(settings)
    durability = settings.durability
    out: dict[str, Any]
    if name == "decision":
        out = await phase_decision.measure(directory, durability, settings.decision_intents)
    elif name == "fanout":
        out = await phase_fanout.measure(
            directory,
            durability,
            settings.fanout_subscribers,
            settings.fanout_messages,
            with_etcd,
        )
    elif name == "failover":
        out = await phase_failover.measure(
            directory, durability, settings.failover_kills, with_etcd
        )
    else:
        out = await phase_restart.measure(
            directory,
            durability,
            settings.restart_entries,
            settings.restart_entry_bytes,
            settings.restart_build_seconds,
        )
    if skipped is not None and name in ("fanout", "failover"):
        out["etcd"] = skipped
    return out


async def measure_phases(settings: Settings, base: Path, log: Log) -> dict[str, dict[str, Any]]:
    """LogAct's own phases that were asked for, each on a fresh cluster; a phase that fails
    is reported as such and the others still run."""
    out: dict[str, dict[str, Any]] = {}
    if "logact" not in settings.systems:
        return out
    for name in LOGACT_PHASES:
        if name not in settings.phases:
            continue
        log(f"phase {name} on a fresh LogAct cluster ...")
        try:
            out[name] = await _logact_phase(name, settings, base / f"phase-{name}")
        except Exception as exc:
            out[name] = {"error": describe_error(exc)}
        log(f"  {phase_line(name, out[name])}")
    return out


async def run_bench(settings: Settings, log: Log) -> dict[str, Any]:
    """Every system, ``repeat`` rounds, in a private run directory that is removed after."""
    base = settings.run_dir or Path(tempfile.mkdtemp(prefix="logact-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.time()
    doc: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "settings": {**asdict(settings), "run_dir": str(base)},
        "environment": environment(base),
        "load_generator": (
            "worker processes (python -m logact.benchmarks.loadgen), each with one client "
            "connection running N/P trio tasks (asyncio + aetcd for etcd), one outstanding "
            "append per task; shape PxT = P processes x T tasks; random payload per append"
        ),
        "systems": {},
        "rounds": [],
        "phase_rounds": [],
    }
    try:
        for index in range(settings.repeat):
            if settings.repeat > 1:
                log(f"[bold]round {index + 1}/{settings.repeat}[/bold]")
            round_dir = base / f"round-{index + 1}"
            doc["rounds"].append(await _measure_round(settings, round_dir, log, index))
            doc["phase_rounds"].append(await measure_phases(settings, round_dir, log))
    finally:
        doc["elapsed_s"] = round(time.time() - started, 1)
        if not settings.keep_run_dir:
            shutil.rmtree(base, ignore_errors=True)
    keys = list(dict.fromkeys(k for r in doc["rounds"] for k in r))
    doc["systems"] = {k: median_doc([r[k] for r in doc["rounds"] if k in r]) for k in keys}
    names = list(dict.fromkeys(k for r in doc["phase_rounds"] for k in r))
    doc["phases"] = {k: median_doc([r[k] for r in doc["phase_rounds"] if k in r]) for k in names}
    doc["environment"]["loadavg_at_end"] = os.getloadavg()
    return doc
