"""A throwaway 3-member etcd cluster on loopback, for a baseline measured in the same run.

Only the ``etcd`` binary (Debian ``etcd-server``) is needed to run it; health, leader and metrics
come from etcd's HTTP endpoints, so nothing here imports the gRPC client. The load itself is
driven by ``aetcd`` in worker processes (optional extra ``bench``).
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from logact.ops.ports import free_ports


def unavailable_reason() -> str | None:
    """Why the etcd baseline cannot run here, or None when it can."""
    if shutil.which("etcd") is None:
        return "etcd not installed (Debian package etcd-server)"
    if importlib.util.find_spec("aetcd") is None:
        return "aetcd not installed (pip install 'logact[bench]')"
    return None


def etcd_version() -> str | None:
    try:
        out = subprocess.run(
            ["etcd", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return None


class EtcdCluster:
    """Members m1..mN, each its own process group, data and logs under ``run_dir``."""

    def __init__(self, run_dir: str | Path, members: int = 3) -> None:
        self.run_dir = Path(run_dir)
        ports = free_ports(members * 2)
        self.names = [f"m{i + 1}" for i in range(members)]
        self.client_ports = {name: ports[2 * i] for i, name in enumerate(self.names)}
        self.peer_ports = {name: ports[2 * i + 1] for i, name in enumerate(self.names)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def endpoint(self, name: str) -> str:
        return f"127.0.0.1:{self.client_ports[name]}"

    def start(self) -> None:
        for name in self.names:
            self.start_member(name)

    def start_member(self, name: str) -> None:
        """Start member ``name`` (again: with its data directory, it rejoins the cluster)."""
        initial = ",".join(
            f"{member}=http://127.0.0.1:{self.peer_ports[member]}" for member in self.names
        )
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        client = f"http://{self.endpoint(name)}"
        peer = f"http://127.0.0.1:{self.peer_ports[name]}"
        args = [
            "etcd",
            "--name", name,
            "--data-dir", str(self.run_dir / name),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", initial,
            "--initial-cluster-token", f"logact-bench-{os.getpid()}",
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        with open(self.run_dir / "logs" / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def kill(self, name: str) -> None:
        """kill -9 member ``name`` and reap it."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items() if proc.poll() is None}

    def _http(self, name: str, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(f"http://{self.endpoint(name)}{path}", data=body)
        with urllib.request.urlopen(request, timeout=2) as response:  # loopback only
            return response.read()

    def put(self, name: str, key: bytes, value: bytes) -> int:
        """Put through member ``name``'s v3 JSON gateway; the revision it was written at."""
        body = json.dumps(
            {"key": base64.b64encode(key).decode(), "value": base64.b64encode(value).decode()}
        ).encode()
        return int(json.loads(self._http(name, "/v3/kv/put", body))["header"]["revision"])

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every member answers /health with true (which implies a leader)."""
        deadline = time.monotonic() + timeout
        pending = set(self.names)
        while pending:
            for name in list(pending):
                dead = self.procs[name].poll()
                if dead is not None:
                    raise RuntimeError(f"etcd {name} exited with {dead}; see {self.run_dir}/logs")
                try:
                    if json.loads(self._http(name, "/health")).get("health") == "true":
                        pending.discard(name)
                except (OSError, ValueError):
                    pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"etcd members {sorted(pending)} not healthy in {timeout}s")
            time.sleep(0.1)

    def leader(self) -> str:
        """The member that is leader (via the v3 JSON gateway's maintenance/status)."""
        for name in self.names:
            try:
                status = json.loads(self._http(name, "/v3/maintenance/status", b"{}"))
            except (OSError, ValueError):
                continue
            if status.get("leader") == status.get("header", {}).get("member_id"):
                return name
        raise RuntimeError("no etcd member reports itself leader")

    def move_leader(self, leader: str, to: str) -> None:
        """Ask the leader to hand leadership to member ``to`` (etcdctl move-leader)."""
        status = json.loads(self._http(to, "/v3/maintenance/status", b"{}"))
        target = {"targetID": status["header"]["member_id"]}
        self._http(leader, "/v3/maintenance/transfer-leadership", json.dumps(target).encode())

    def metrics(self, name: str, wanted: tuple[str, ...]) -> dict[str, float]:
        """Selected Prometheus counters of one member (un-labelled series only)."""
        out: dict[str, float] = {}
        try:
            text = self._http(name, "/metrics").decode()
        except OSError:
            return out
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key in wanted:
                out[key] = float(value)
        return out

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs.clear()
