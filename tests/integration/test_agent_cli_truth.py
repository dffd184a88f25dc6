"""A CLI that never claims success it did not have (issue 17), as real processes on the shared
3-node cluster: ``logact health`` exit codes and unknown buses, missing buses for ``agent
timeline`` and ``mail``, what ``agent run`` says it runs, ``--script`` checked before anything
is appended, the human voter's answers and ``--follow``, one line of activity per vote,
decision and run, and a clean stop on SIGINT / SIGTERM for every long-running command.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.agent.core import entries as e
from logact.agent.models.llm import tool_call
from logact.client.client import Client
from logact.jepsen_tests.model_endpoint import RULES
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN

from .test_agent_cli import (
    CLI_TIMEOUT,
    RUN_TIMEOUT,
    Call,
    Ran,
    _argv,
    _env,
    append,
    assert_clean_failure,
    cli,
    cli_many,
    fold,
    new_bus,
    read_bus,
    shell,
    typed,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

#: A scripted driver: write notes.txt, then answer.
WRITE_THEN_ANSWER: list[dict[str, Any]] = [
    {"tool_calls": [tool_call("write_file", {"path": "notes.txt", "content": "hello"}, "c1")]},
    {"content": "done: wrote notes.txt"},
]


def bus_exists(cluster: LocalCluster, bus: str) -> bool:
    """Whether the cluster knows ``bus`` (read with the admin token)."""

    async def listed() -> bool:
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=20) as log:
            return any(info.bus == bus for info in await log.list_buses())

    return trio.run(listed)


def write_json(path: Path, doc: Any) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def one_error_line(ran: Ran, message: str) -> None:
    """Exit 1 with one error line on stderr naming ``message``, nothing on stdout, and no
    traceback (Python's own warnings, if the interpreter prints any, are not ours to count)."""
    assert_clean_failure(ran, message)
    assert ran.code == 1 and ran.stdout == "", ran.text
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], ran.stderr
    assert ran.stderr.endswith(errors[0] + "\n"), ran.stderr


# --- long-running processes ---------------------------------------------------------------------


@dataclass
class Background:
    """A long-running ``logact`` process; stdout and stderr go to files, read as it runs."""

    name: str
    process: subprocess.Popen[str]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def wait_for(self, pattern: str, timeout: float = CLI_TIMEOUT) -> re.Match[str]:
        """The first match of regex ``pattern`` in stdout; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.stdout(), re.M)) is None:
            code = self.process.poll()
            if code is not None or time.monotonic() > deadline:
                state = f"exited {code}" if code is not None else f"still silent after {timeout}s"
                pytest.fail(
                    f"{self.name} {state} before printing {pattern!r}:\n"
                    f"{self.stdout()}\n{self.stderr()}"
                )
            time.sleep(0.05)  # polling the output file for the line
        return found

    def say(self, text: str) -> None:
        """Type ``text`` on the process's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def stop(self, signum: int) -> tuple[int, str]:
        """Send ``signum``; the exit code and what the process wrote to stderr after it."""
        before = len(self.stderr())
        self.process.send_signal(signum)
        code = self.process.wait(timeout=CLI_TIMEOUT)
        return code, self.stderr()[before:]


@pytest.fixture
def start(cluster: LocalCluster, tmp_path: Path) -> Iterator[Any]:
    """Starts Background processes; kills any still running at the end of the test."""
    started: list[Background] = []

    def launch(name: str, *args: str, cwd: Path | None = None) -> Background:
        out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(
                _argv(cluster, Call(args)),
                stdin=subprocess.PIPE,
                stdout=stdout,
                stderr=stderr,
                text=True,
                env=_env(),
                cwd=cwd,
            )
        started.append(Background(name, process, out, err))
        return started[-1]

    yield launch
    for background in started:
        if background.process.poll() is None:
            background.process.kill()
            background.process.wait()


def assert_stopped_cleanly(background: Background, signum: signal.Signals) -> None:
    """Signal ``background``: it exits 128 + signum, with one line on stderr and no traceback."""
    code, said = background.stop(signum)
    assert code == 128 + signum, f"{background.name}: {code}\n{background.stderr()}"
    assert said == f"stopped by {signum.name}\n", f"{background.name}: {said!r}"
    assert "Traceback" not in background.stdout() + background.stderr()


# --- health: Nagios exit codes, unknown buses ---------------------------------------------------


def test_health_exits_with_nagios_codes_and_never_calls_a_missing_bus_healthy(
    cluster: LocalCluster,
) -> None:
    ok, warning, critical, missing = (new_bus(f"health-{n}") for n in ("ok", "w", "c", "missing"))
    append(cluster, ok, "driver", e.AgentInput("t"), e.AgentOutput("done"))
    append(cluster, warning, "driver", e.AgentInput("t"), *[shell("ls")] * 3)  # repeated_action
    _, *intents = append(cluster, critical, "driver", e.AgentInput("t"), *[shell("x")] * 3)
    append(cluster, critical, "decider", *[e.Abort(i, "vetoed") for i in intents])  # a streak

    def health(*args: str) -> Call:
        return Call(["health", *args])

    runs = cli_many(
        cluster,
        [
            health("--bus", ok),
            health("--bus", warning),
            health("--bus", critical),
            health("--bus", missing, "--record", "--mail"),
            health("--bus", ok, "--bus", missing, "--bus", warning),
            health("--bus", missing, "--bus", critical),
            health("--bus", missing, "--json"),
            health("--watch", new_bus("health-none") + "/"),
        ],
    )
    codes = [ran.code for ran in runs]
    assert codes == [0, 1, 2, 3, 3, 2, 3, 3], "\n".join(ran.text for ran in runs)
    by_ok, by_warning, by_critical, by_missing, _, _, as_json, nothing = runs
    assert f"{ok}: healthy" in by_ok.stdout and "status: OK" in by_ok.stdout
    assert f"{warning}: WARN repeated_action" in by_warning.stdout
    assert f"{critical}: ALERT error_streak" in by_critical.stdout
    assert f"{missing}: UNKNOWN unknown_bus: there is no bus {missing}" in by_missing.stdout
    assert "healthy" not in by_missing.stdout and "status: UNKNOWN" in by_missing.stdout
    [report] = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert (report["bus"], report["status"]) == (missing, "UNKNOWN")
    assert [f["signal"] for f in report["findings"]] == ["unknown_bus"]
    assert "no bus under" in nothing.stderr
    assert not bus_exists(cluster, missing), "--record/--mail created the missing bus"


def test_health_help_documents_the_exit_codes(cluster: LocalCluster) -> None:
    ran = cli(cluster, "health", "--help")
    assert ran.code == 0, ran.text
    for code, name in ((0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN")):
        assert re.search(rf"^\s+{code} {name}\b", ran.stdout, re.M), ran.stdout


# --- missing buses: timeline, mail, vote --------------------------------------------------------


def test_a_missing_bus_is_said_to_be_missing_and_mail_does_not_create_it(
    cluster: LocalCluster,
) -> None:
    missing = new_bus("missing")
    timeline, timeline_json, mail, vote = cli_many(
        cluster,
        [
            Call(["agent", "timeline", "--bus", missing]),
            Call(["agent", "timeline", "--bus", missing, "--json"]),
            Call(["mail", "--to", missing, "hello?"]),
            Call(["vote", "--bus", missing]),
        ],
    )
    for ran in (timeline, timeline_json, mail, vote):
        one_error_line(ran, f"bus {missing} does not exist")
    assert "--create" in mail.stderr
    assert not bus_exists(cluster, missing)

    created = cli(cluster, "mail", "--to", missing, "--create", "--from", "ann", "hello")
    assert created.code == 0, created.text
    [(raw, mail_entry)] = typed(read_bus(cluster, missing), e.Mail)
    assert (raw.author, mail_entry) == ("mailer", e.Mail("ann", missing, "hello"))


# --- agent run: what runs, and scripts --------------------------------------------------------


def test_agent_run_says_which_voters_run_and_warns_that_no_rules_allow_all(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """With --llm script and no voter script, the LLM voter is a scripted approver: it is not
    fed the driver's script (whose tool calls are no verdicts, so everything was vetoed)."""
    bus = new_bus("run-says")
    ran = cli(
        cluster,
        "agent", "run", "--bus", bus, "--workspace", str(tmp_path / "ws"), "--task", "write",
        "--llm", "script", "--script", write_json(tmp_path / "s.json", WRITE_THEN_ANSWER),
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert ran.code == 0, ran.text
    assert (
        "voters: rule (no --rules: allows everything), llm (scripted, approves every action)"
        in (ran.stdout)
    )
    assert "decider: veto" in ran.stdout and "driver: model scripted" in ran.stdout
    assert "WARNING: no --rules: the rule voter approves EVERY action" in ran.stderr
    state = fold(bus, read_bus(cluster, bus))
    [written] = state.intents.values()
    assert written.committed and written.result is not None and written.result.ok
    assert {v.voter_id: (v.approve, v.reason) for _, v in written.votes}["llm"] == (
        True,
        "scripted: no concern found",
    )
    assert (tmp_path / "ws" / "notes.txt").read_text() == "hello"


def test_agent_run_gives_the_llm_voter_its_own_script(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    bus = new_bus("run-voter-script")
    verdict = {"approve": False, "reason": "scripted: no writing today", "concerns": []}
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    ran = cli(
        cluster,
        "agent", "run", "--bus", bus, "--workspace", str(tmp_path / "ws"), "--task", "write",
        "--llm", "script", "--script", write_json(tmp_path / "s.json", WRITE_THEN_ANSWER),
        "--rules", str(rules),
        "--voter-script", write_json(tmp_path / "v.json", [{"content": json.dumps(verdict)}]),
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert ran.code == 0, ran.text
    assert f"voters: rule ({rules}: 1 rule, default allow), llm (scripted, replies from " in (
        ran.stdout
    )
    assert "WARNING" not in ran.stderr
    [vetoed] = fold(bus, read_bus(cluster, bus)).intents.values()
    assert vetoed.aborted and vetoed.result is None
    assert {v.voter_id: v.approve for _, v in vetoed.votes} == {"rules": True, "llm": False}
    assert not (tmp_path / "ws" / "notes.txt").exists()


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("[{", "not JSON"),
        (
            '{"content": "a map, not a list"}',
            "must be a non-empty JSON list of replies, got a dict",
        ),
        ("[]", "must be a non-empty JSON list of replies, got an empty list"),
        ('[{"content": "ok"}, {"text": "hi"}]', "reply 1 has unknown key(s) 'text'"),
        ('[{"content": null}]', "reply 0 has neither content nor tool_calls"),
        (
            '[{"tool_calls": [{"id": "c", "type": "function", '
            '"function": {"name": "shell", "arguments": {"command": "ls"}}}]}]',
            "reply 0 tool_calls[0].function.arguments is not a JSON object in a string",
        ),
    ],
    ids=["not-json", "not-a-list", "empty", "unknown-key", "no-content", "arguments-not-text"],
)
def test_a_bad_script_is_one_line_before_anything_is_appended(
    cluster: LocalCluster, tmp_path: Path, script: str, problem: str
) -> None:
    path = tmp_path / "script.json"
    path.write_text(script)
    bus = new_bus("bad-script")
    run, driver, voter = cli_many(
        cluster,
        [
            Call(["agent", "run", "--bus", bus, "--workspace", str(tmp_path / "ws"), "--task",
                  "t", "--llm", "script", "--script", str(path)]),
            Call(["agent", "driver", "--bus", bus, "--llm", "script", "--script", str(path)]),
            Call(["agent", "run", "--bus", bus, "--workspace", str(tmp_path / "ws"), "--task",
                  "t", "--llm", "script", "--script", str(path), "--voter-script", str(path)]),
        ],
    )  # fmt: skip
    for ran in (run, driver, voter):
        one_error_line(ran, f"script {path}: {problem}")
    assert not bus_exists(cluster, bus), "a bad script left a half-written bus"


# --- the human voter ----------------------------------------------------------------------------


def test_vote_takes_yes_as_yes_and_asks_again_on_anything_else(cluster: LocalCluster) -> None:
    bus = new_bus("vote-answers")
    _, first, second, third = append(
        cluster, bus, "driver", e.AgentInput("tidy"), shell("ls"), shell("pwd"), shell("rm x")
    )
    ran = cli(cluster, "vote", "--bus", bus, stdin="maybe\nyes\nfine\nNO\n\ns\n")
    assert ran.code == 0, ran.text
    assert ran.stderr.count("please answer y, yes, n, no, s or skip") == 1, ran.stderr
    assert f"#{first}: approved" in ran.stdout and f"#{second}: rejected" in ran.stdout
    votes = [(v.intent_id, v.approve, v.reason) for _, v in typed(read_bus(cluster, bus), e.Vote)]
    assert votes == [(first, True, "fine"), (second, False, "rejected by a person")]
    assert third not in [intent for intent, _, _ in votes]  # skipped


def test_vote_follow_asks_about_new_intents_until_ctrl_c(cluster: LocalCluster, start: Any) -> None:
    bus = new_bus("vote-follow")
    append(cluster, bus, "user", e.AgentInput("tidy"))
    voting = start("vote", "vote", "--bus", bus, "--follow")
    voting.wait_for("following .*Ctrl-C to stop")
    for answer, command in (("y", "ls"), ("n", "rm -rf /")):
        [intent] = append(cluster, bus, "driver", shell(command))
        voting.wait_for(rf"PROPOSED #{intent}: shell: {re.escape(command)}")
        voting.say(f"{answer}\nsaid {answer}\n")
        voting.wait_for(rf"#{intent}: {'approved' if answer == 'y' else 'rejected'}")
    assert_stopped_cleanly(voting, signal.SIGINT)
    votes = [(v.approve, v.reason) for _, v in typed(read_bus(cluster, bus), e.Vote)]
    assert votes == [(True, "said y"), (False, "said n")]


# --- components: one line per vote, decision and run; clean stops -------------------------------


def test_components_tell_each_vote_decision_and_run_and_stop_cleanly(
    cluster: LocalCluster, start: Any, tmp_path: Path
) -> None:
    bus, driven = new_bus("parts"), new_bus("parts-driver")
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    _, intent = append(
        cluster,
        bus,
        "driver",
        e.AgentInput("write"),
        e.Intent(e.ToolCall("write_file", {"path": "a.txt", "content": "hi"}, "c1")),
    )
    append(cluster, driven, "user", e.AgentInput("say done"))
    script = write_json(tmp_path / "s.json", [{"content": "nothing to do: done"}])
    veto = '{"kind": "veto", "params": {"kinds": ["rule"]}}'
    voter = start("voter", "agent", "voter", "--bus", bus, "--kind", "rule", "--rules", str(rules))
    decider = start("decider", "agent", "decider", "--bus", bus, "--policy", veto)
    executor = start(
        "executor", "agent", "executor", "--bus", bus, "--workspace", str(tmp_path / "ws")
    )
    driver = start(
        "driver", "agent", "driver", "--bus", driven, "--llm", "script", "--script", script
    )

    stamp = rf"^\d\d:\d\d:\d\d INFO {re.escape(bus)}: "
    voter.wait_for(stamp + rf"voted approve on #{intent} \(rule: no rule matched")
    decider.wait_for(stamp + rf"committed #{intent} \(")
    executor.wait_for(stamp + rf"ran #{intent}: ok in \d+ ms$")
    driver.wait_for(rf"^\d\d:\d\d:\d\d INFO {re.escape(driven)}: answered: nothing to do: done$")
    for background in (voter, decider, executor, driver):
        assert background.stdout().startswith("ready: "), background.stdout()

    assert_stopped_cleanly(voter, signal.SIGTERM)
    assert_stopped_cleanly(decider, signal.SIGINT)
    assert_stopped_cleanly(executor, signal.SIGTERM)
    assert_stopped_cleanly(driver, signal.SIGINT)
    assert (tmp_path / "ws" / "a.txt").read_text() == "hi"


def test_agent_run_and_health_watch_stop_cleanly(
    cluster: LocalCluster, start: Any, tmp_path: Path
) -> None:
    bus = new_bus("run-stop")
    prefix = bus.rsplit("/", 1)[0] + "/"
    script = write_json(tmp_path / "s.json", WRITE_THEN_ANSWER)
    people = '{"kind": "all", "params": {"kinds": ["human"]}}'  # waits for a person: forever
    running = start(
        "run", "agent", "run", "--bus", bus, "--workspace", str(tmp_path / "ws"), "--task", "t",
        "--llm", "script", "--script", script, "--policy", people,
    )  # fmt: skip
    running.wait_for(rf"INFO {re.escape(bus)}: proposed #\d+: write_file")
    watching = start(
        "health", "health", "--watch", prefix, "--rounds", "100000", "--interval", "0.2"
    )
    watching.wait_for(rf"^{re.escape(bus)}: ")
    assert_stopped_cleanly(running, signal.SIGTERM)
    assert_stopped_cleanly(watching, signal.SIGINT)
    assert not (tmp_path / "ws" / "notes.txt").exists()
