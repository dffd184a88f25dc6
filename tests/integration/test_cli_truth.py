"""The log commands of the ``logact`` CLI claim only what they did (issue 17).

Every test runs the real ``logact`` command as a child process against real node processes:
``cluster up`` refuses busy addresses and reports nodes that died, ``cluster down`` names what
it stopped and never signals a process it did not start, ``status`` tells a wrong token from a
node down and needs a quorum, ``append``/``read``/``tail`` refuse what they cannot do, and
``tail -f`` and ``node`` stop cleanly on SIGINT and SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from logact.ops.local_cluster import LocalCluster, NodeProcess
from logact.ops.node_probe import NodeState, probe
from logact.ops.ports import free_ports
from logact.ops.test_config import ADMIN_TOKEN, AGENT_VALIDATOR, READER_TOKEN, write_local_config
from logact.server.config import load_config

pytestmark = pytest.mark.cluster

#: Bound on one CLI command (a cluster up included) and on waiting for a child's output.
COMMAND_TIMEOUT = 120.0

_SCRIPT = Path(sys.executable).with_name("logact")
LOGACT = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "logact.cli.main"]

ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def logact(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``logact ARGS`` to completion (wide console: rich does not wrap the table)."""
    return subprocess.run(
        [*LOGACT, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env={**os.environ, "COLUMNS": "200"},
    )


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*LOGACT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )


def first_line(stream: object, timeout: float = COMMAND_TIMEOUT) -> str:
    """The first line a child writes to ``stream`` (a pipe), within ``timeout`` seconds."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line within {timeout}s (so far: {data!r})"
            if selector.select(remaining):
                chunk = os.read(fd, 4096)
                assert chunk, f"the stream closed before a whole line: {data!r}"
                data += chunk
    return data.split(b"\n", 1)[0].decode()


def said(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped yet counts)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def held(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, as another program would hold it."""
    sock = socket.socket()
    sock.bind((host, port))
    sock.listen()
    return sock


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(config, run dir) of a 3-node cluster on free ports, not started; any node left running
    at the end is killed."""
    config = write_local_config(tmp_path)
    run_dir = tmp_path / "run"
    try:
        yield str(config), str(run_dir)
    finally:
        LocalCluster(config, run_dir).kill_all()


def test_up_status_down_say_exactly_what_they_did(fresh: tuple[str, str]) -> None:
    config, run_dir = fresh
    where = ["--config", config, "--run-dir", run_dir]
    up = logact("cluster", "up", *where)
    assert up.returncode == 0, said(up)
    match = re.fullmatch(
        r"cluster up: leader (n[123]); started n1 \(pid (\d+)\), n2 \(pid (\d+)\), "
        r"n3 \(pid (\d+)\); run dir (.+)\n",
        up.stdout,
    )
    assert match, said(up)
    pids = dict(zip(["n1", "n2", "n3"], map(int, match.groups()[1:4]), strict=True))
    local = LocalCluster(config, run_dir)
    assert {node_id: local.pid(node_id) for node_id in pids} == pids  # recorded and running

    again = logact("cluster", "up", *where)
    assert again.returncode == 0, said(again)
    assert "started" not in again.stdout
    assert f"already running n1 (pid {pids['n1']}), n2 (pid {pids['n2']})" in again.stdout

    status = logact("cluster", "status", *where, "--json")
    assert status.returncode == 0, said(status)
    rows = json.loads(status.stdout)
    assert {n: (r["state"], r["pid"]) for n, r in rows.items()} == {
        n: ("ok", pid) for n, pid in pids.items()
    }
    assert status.stderr == ""

    # A wrong token is no node down: every node says so, and without a quorum it is an error.
    wrong = logact("status", "--config", config, "--token", "not-a-token", "--json")
    assert wrong.returncode == 1, said(wrong)
    assert {r["state"] for r in json.loads(wrong.stdout).values()} == {"unauthorized"}
    assert wrong.stderr.strip() == "error: no quorum: 0 of 3 nodes ok (3 unauthorized)"

    down = logact("cluster", "down", *where)
    assert down.returncode == 0, said(down)
    assert down.stdout == (
        f"stopped n1 (pid {pids['n1']}), n2 (pid {pids['n2']}), n3 (pid {pids['n3']})\n"
    )
    assert all(gone(pid) for pid in pids.values())

    nothing = logact("cluster", "down", *where)
    assert nothing.returncode == 0, said(nothing)
    assert nothing.stdout.startswith("nothing was running")

    after = logact("cluster", "status", *where, "--json")
    assert after.returncode == 1, said(after)
    assert {r["state"] for r in json.loads(after.stdout).values()} == {"unreachable"}
    assert "no quorum: 0 of 3 nodes ok (3 unreachable)" in after.stderr
    human = logact("status", "--config", config)
    assert human.returncode == 1 and "unreachable" in human.stdout, said(human)


def test_up_refuses_a_busy_address_and_starts_nothing(fresh: tuple[str, str]) -> None:
    config, run_dir = fresh
    n2 = load_config(config).node("n2")
    assert n2.raft_host is not None and n2.raft_port is not None
    with held(n2.raft_host, n2.raft_port):
        up = logact("cluster", "up", "--config", config, "--run-dir", run_dir)
    assert up.returncode == 1, said(up)
    assert up.stderr.splitlines() == [
        f"error: address in use: {n2.raft_address} (n2 raft); nothing started"
    ]
    assert up.stdout == ""
    local = LocalCluster(config, run_dir)
    assert all(local.process(node_id) is None for node_id in local.node_ids)


def test_up_reports_nodes_that_all_exited_with_the_end_of_their_logs(
    fresh: tuple[str, str],
) -> None:
    config, run_dir = fresh
    text = Path(config).read_text()
    Path(config).write_text(text.replace(AGENT_VALIDATOR, "logact_no_such_module:validate"))
    up = logact("cluster", "up", "--config", config, "--run-dir", run_dir)
    assert up.returncode == 1, said(up)
    first, *tails = up.stderr.splitlines()
    assert first.startswith("error: every node it started exited: n1 (exit code 1)"), said(up)
    assert "stopped" not in first  # nothing was left to stop
    for node_id in ("n1", "n2", "n3"):
        assert f"{node_id} (exit code 1)" in first
        assert any(line.endswith(f"logs/{node_id}.log:") for line in tails), said(up)
    assert sum("No module named 'logact_no_such_module'" in line for line in tails) == 3
    assert "Traceback" not in up.stderr


def test_up_stops_the_nodes_it_started_when_one_exits(
    fresh: tuple[str, str], tmp_path: Path
) -> None:
    config, run_dir = fresh
    blocker = tmp_path / "a-file"
    blocker.write_text("n2's data dir cannot be made under a file")
    text = Path(config).read_text()
    Path(config).write_text(text.replace('"data/n2"', f'"{blocker}/n2"'))
    up = logact("cluster", "up", "--config", config, "--run-dir", run_dir)
    assert up.returncode == 1, said(up)
    first = up.stderr.splitlines()[0]
    match = re.fullmatch(
        r"error: exited: n2 \(exit code 1\); stopped n1 \(pid (\d+)\), n3 \(pid (\d+)\), "
        r"which it had started",
        first,
    )
    assert match, said(up)
    assert all(gone(int(pid)) for pid in match.groups())
    assert "logs/n2.log:" in up.stderr and "Not a directory" in up.stderr
    assert up.stdout == ""


def test_down_never_signals_a_process_it_did_not_start(fresh: tuple[str, str]) -> None:
    """Pid files naming a live process that is not the node (its pid reused, or an old pid-only
    file) are not trusted: nothing is signalled and the files go."""
    config, run_dir = fresh
    local = LocalCluster(config, run_dir)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        itself = NodeProcess.of(bystander.pid)
        assert itself is not None
        (Path(run_dir) / "pids").mkdir(parents=True)
        reused = NodeProcess(bystander.pid, itself.start_ticks - 1, itself.boot_id)
        local.pid_file("n1").write_text(reused.line())
        local.pid_file("n2").write_text(f"{bystander.pid}\n")
        down = logact("cluster", "down", "--config", config, "--run-dir", run_dir)
        assert down.returncode == 0, said(down)
        assert down.stdout.startswith("nothing was running"), said(down)
        assert bystander.poll() is None, "cluster down signalled a process it did not start"
        assert not local.pid_file("n1").exists() and not local.pid_file("n2").exists()
    finally:
        bystander.kill()
        bystander.wait(COMMAND_TIMEOUT)


def test_down_fails_while_a_configured_address_still_answers(fresh: tuple[str, str]) -> None:
    config, run_dir = fresh
    n1 = load_config(config).node("n1")
    with held(n1.client_host, n1.client_port):
        down = logact("cluster", "down", "--config", config, "--run-dir", run_dir)
    assert down.returncode == 1, said(down)
    assert down.stdout.startswith("nothing was running")
    assert down.stderr.splitlines() == [
        f"error: still answering: {n1.client_address} (n1 client) (not started from "
        f"{Path(run_dir).resolve()}, so not stopped)"
    ]


def test_status_needs_a_quorum_of_healthy_nodes(cluster: LocalCluster) -> None:
    dead = [f"127.0.0.1:{port}" for port in free_ports(2)]
    token = ["--token", READER_TOKEN, "--config", "/nonexistent.toml"]
    healthy = logact("status", "--config", str(cluster.config_path), "--json")
    assert healthy.returncode == 0, said(healthy)
    assert {r["state"] for r in json.loads(healthy.stdout).values()} == {"ok"}

    one_of_three = ",".join([cluster.addresses[0], *dead])
    short = logact("status", "--nodes", one_of_three, *token, "--json")
    assert short.returncode == 1, said(short)
    states = {a: r["state"] for a, r in json.loads(short.stdout).items()}
    assert states == {cluster.addresses[0]: "ok", dead[0]: "unreachable", dead[1]: "unreachable"}
    assert "no quorum: 1 of 3 nodes ok (2 unreachable)" in short.stderr

    two_of_three = ",".join([*cluster.addresses[:2], dead[0]])
    enough = logact("status", "--nodes", two_of_three, *token)
    assert enough.returncode == 0, said(enough)
    assert enough.stdout.count(" ok ") == 2 and "unreachable" in enough.stdout
    (why,) = enough.stderr.splitlines()
    assert why.startswith(f"{dead[0]}: unreachable: ")


def test_append_read_and_tail_say_what_they_did(cluster: LocalCluster, bus: str) -> None:
    config = ["--config", str(cluster.config_path)]
    bad = logact("append", *config, "--bus", bus, "--type", "note", "not {json")
    assert bad.returncode == 1, said(bad)
    assert bad.stderr.splitlines() == [
        "error: BODY is not valid JSON (Expecting value at character 0); "
        "pass --string to append it as a string"
    ]
    missing = logact("read", *config, "--bus", bus)
    assert missing.returncode == 1, said(missing)
    assert missing.stderr.splitlines() == [f"error: bus '{bus}' does not exist"]

    text = logact("append", *config, "--bus", bus, "--type", "note", "--string", "not {json")
    assert text.returncode == 0, said(text)
    assert text.stdout == f"appended at position 0 of bus {bus}\n"
    value = logact("append", *config, "--bus", bus, "--type", "note", '{"k": [1, 2]}', "--json")
    assert value.returncode == 0, said(value)
    assert json.loads(value.stdout) == {"bus": bus, "pos": 1}

    read = logact("read", *config, "--bus", bus)
    assert read.returncode == 0, said(read)
    lines = read.stdout.splitlines()
    assert len(lines) == 2
    for pos, line, body in zip((0, 1), lines, ('"not {json"', '{"k": [1, 2]}'), strict=True):
        assert re.fullmatch(rf" +{pos}  {ISO_UTC}  note +writer +{re.escape(body)}", line), line
    as_json = logact("read", *config, "--bus", bus, "--json")
    entries = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [e["body"] for e in entries] == ["not {json", {"k": [1, 2]}]
    assert all(isinstance(e["ts"], int) for e in entries)  # raw ms
    tail = logact("tail", *config, "--bus", bus)
    assert tail.returncode == 0 and tail.stdout == read.stdout, said(tail)


def test_a_bus_that_does_not_exist_is_an_error_to_read_or_follow(
    cluster: LocalCluster, bus: str
) -> None:
    config = ["--config", str(cluster.config_path)]
    tail = logact("tail", *config, "--bus", bus)
    assert tail.returncode == 1 and tail.stdout == "", said(tail)
    assert tail.stderr.splitlines() == [f"error: bus '{bus}' does not exist"]
    follow = logact("tail", *config, "-f", "--bus", bus)
    assert follow.returncode == 1, said(follow)
    assert follow.stderr.splitlines() == [
        f"error: bus '{bus}' does not exist (-f --wait-for-bus waits for its first entry)"
    ]


@pytest.mark.parametrize("command", ["append", "read", "status"])
def test_bad_node_addresses_are_one_line_errors(command: str) -> None:
    args = {"append": ["--bus", "b", "--type", "note", "1"], "read": ["--bus", "b"], "status": []}
    nodes = ["--nodes", "127.0.0.1:7101,nonsense", "--token", "t", "--config", "/nonexistent.toml"]
    done = logact(command, *nodes, *args[command])
    assert done.returncode == 1, said(done)
    assert done.stderr.splitlines() == [
        "error: --nodes: 'nonsense' is not host:port (e.g. 127.0.0.1:7101)"
    ]


STOPS = [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]


@pytest.mark.parametrize(("signum", "code", "name"), STOPS)
def test_tail_follow_waits_for_a_bus_and_stops_cleanly(
    cluster: LocalCluster, bus: str, signum: int, code: int, name: str
) -> None:
    config = ["--config", str(cluster.config_path)]
    follow = spawn("tail", *config, "-f", "--wait-for-bus", "--bus", bus)
    try:
        done = logact("append", *config, "--bus", bus, "--type", "note", "[1]")
        assert done.returncode == 0, said(done)
        assert re.fullmatch(rf" +0  {ISO_UTC}  note +writer +\[1\]", stdout_line(follow))
        follow.send_signal(signum)
        assert follow.wait(COMMAND_TIMEOUT) == code
        assert follow.stderr is not None
        assert follow.stderr.read().decode().splitlines() == [f"stopped by {name}"]
    finally:
        follow.kill()
        follow.wait(COMMAND_TIMEOUT)


def stdout_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    return first_line(proc.stdout)


@pytest.mark.parametrize(("signum", "code", "name"), STOPS)
def test_a_node_stops_cleanly_on_a_signal(
    tmp_path: Path, signum: int, code: int, name: str
) -> None:
    config = write_local_config(tmp_path, nodes=1)
    node = spawn("node", "--config", str(config), "--id", "n1", "--run-dir", str(tmp_path))
    try:
        address = load_config(config).node("n1").client_address
        wait_until_serving(address)
        node.send_signal(signum)
        assert node.wait(COMMAND_TIMEOUT) == code
        assert node.stderr is not None
        stderr = node.stderr.read().decode()
        assert stderr.splitlines()[-1] == f"stopped by {name}"
        assert "Traceback" not in stderr
    finally:
        node.kill()
        node.wait(COMMAND_TIMEOUT)


def wait_until_serving(address: str) -> None:
    async def serving() -> None:
        with trio.fail_after(COMMAND_TIMEOUT):
            while (await probe(address, ADMIN_TOKEN, timeout=2.0)).state is not NodeState.OK:
                await trio.sleep(0.1)

    trio.run(serving)


def test_a_node_whose_address_is_taken_says_so_in_one_line(tmp_path: Path) -> None:
    config = write_local_config(tmp_path, nodes=1)
    n1 = load_config(config).node("n1")
    with held(n1.client_host, n1.client_port):
        done = subprocess.run(
            [*LOGACT, "node", "--config", str(config), "--id", "n1", "--run-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
    assert done.returncode == 1, said(done)
    assert done.stderr.splitlines()[-1] == (
        f"error: node n1 cannot listen on {n1.client_address}: Address already in use"
    )
    assert "Traceback" not in done.stderr
