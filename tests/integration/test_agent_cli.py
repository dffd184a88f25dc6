"""The agent commands of the ``logact`` CLI as real processes against the shared 3-node cluster.

``logact agent task|run|timeline|decider|voter``, ``logact mail``, ``logact vote`` and
``logact policy`` each run as ``python -m logact.cli.main ...`` with ``--config`` of the cluster
and, where it matters, the token of one agent role's principal. What they appended is read back
with an admin client and checked entry by entry; errors must exit non-zero with a clear message
and append nothing. Independent invocations run concurrently (each process spends ~2 s
importing before it does anything).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.integrations.policy_admin import signed
from logact.agent.models.llm import tool_call
from logact.client.client import Client
from logact.jepsen_tests.model_endpoint import LLM_DENY, RULES
from logact.ops.local_cluster import LocalCluster
from logact.ops.test_config import ADMIN_TOKEN, agent_token
from logact.protocol.codec import Entry
from logact.protocol.errors import UnknownBus

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

#: Bound on one CLI process (start-up, a few requests, exit).
CLI_TIMEOUT = 60.0
#: Bound on ``logact agent run`` (a whole three-step agent).
RUN_TIMEOUT = 120.0


#: write_file (approved), ``rm -rf x`` (vetoed by the rule voter), then the final answer.
RUN_SCRIPT: list[dict[str, Any]] = [
    {"tool_calls": [tool_call("write_file", {"path": "notes.txt", "content": "hello"}, "c1")]},
    {"tool_calls": [tool_call("shell", {"command": "rm -rf x"}, "c2")]},
    {"content": "done: wrote notes.txt"},
]


def new_bus(prefix: str) -> str:
    """A bus name no other test uses (tests share the cluster)."""
    return f"cli-{prefix}/{uuid.uuid4().hex[:12]}"


# --- running the CLI ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    """A finished CLI process."""

    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        """Everything it printed (rich prints errors on stdout, Python tracebacks on stderr)."""
        return self.stdout + self.stderr


@dataclass(frozen=True)
class Call:
    """One ``logact`` invocation: arguments after ``--config``, optional token and stdin."""

    args: Sequence[str]
    token: str | None = None
    stdin: str = ""
    timeout: float = CLI_TIMEOUT


def _argv(cluster: LocalCluster, call: Call) -> list[str]:
    head, *rest = call.args
    if head == "agent":  # the subcommand's own options follow it
        head, rest = f"agent {rest[0]}", rest[1:]
    token = ["--token", call.token] if call.token else []
    return [
        sys.executable,
        "-m",
        "logact.cli.main",
        *head.split(),
        "--config",
        str(cluster.config_path),
        *token,
        *rest,
    ]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LOGACT_TOKEN", "FORCE_COLOR")}
    return {**env, "PYTHONUNBUFFERED": "1"}


def cli_many(cluster: LocalCluster, calls: Sequence[Call], cwd: Path | None = None) -> list[Ran]:
    """Run the invocations concurrently; each is killed and fails the test past its timeout."""
    procs = [
        (
            call,
            subprocess.Popen(
                _argv(cluster, call),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(),
                cwd=cwd,
            ),
        )
        for call in calls
    ]
    results: list[Ran] = []
    try:
        for call, proc in procs:
            try:
                out, err = proc.communicate(call.stdin, timeout=call.timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(
                    f"logact {' '.join(call.args)} still running after {call.timeout}s:\n{out}{err}"
                )
            results.append(Ran(proc.returncode, out, err))
    finally:
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def cli(
    cluster: LocalCluster,
    *args: str,
    token: str | None = None,
    stdin: str = "",
    timeout: float = CLI_TIMEOUT,
    cwd: Path | None = None,
) -> Ran:
    """Run one ``logact`` command to completion."""
    return cli_many(cluster, [Call(args, token, stdin, timeout)], cwd)[0]


def assert_clean_failure(ran: Ran, message: str) -> None:
    """Non-zero exit with ``message`` and no Python traceback."""
    assert ran.code != 0, ran.text
    assert message in ran.text, ran.text
    assert "Traceback" not in ran.text, ran.text


# --- the bus, read and written directly ---------------------------------------------------------


def read_bus(cluster: LocalCluster, bus: str) -> list[Entry]:
    """Every entry of ``bus`` (none if it does not exist), read with the admin token."""

    async def read() -> list[Entry]:
        async with Client(cluster.addresses, ADMIN_TOKEN, timeout=20) as log:
            try:
                return await log.read_all(bus)
            except UnknownBus:
                return []

    return trio.run(read)


def append(cluster: LocalCluster, bus: str, role: str, *bodies: e.AgentEntry) -> list[int]:
    """Append typed entries one by one as the principal of ``role``; their positions."""

    async def write() -> list[int]:
        async with Client(cluster.addresses, agent_token(role), timeout=20) as log:
            return [await log.append(bus, *body.to_entry()) for body in bodies]

    return trio.run(write)


def fold(bus: str, entries: Sequence[Entry]) -> BusState:
    """The bus folded as every component sees it."""
    state = BusState(bus)
    for entry in entries:
        state.apply(entry)
    return state


def typed(entries: Sequence[Entry], cls: type[Any]) -> list[tuple[Entry, Any]]:
    """(raw, parsed) for the entries of ``cls``'s type."""
    return [(raw, e.parse(raw.type, raw.body)) for raw in entries if raw.type == cls.TYPE]


def shell(command: str) -> e.Intent:
    """An intent to run ``command`` with the shell tool."""
    return e.Intent(e.ToolCall("shell", {"command": command}, "call-1"))


# --- task and mail ------------------------------------------------------------------------------


def test_task_appends_agent_input_as_the_user(cluster: LocalCluster) -> None:
    bus = new_bus("task")
    ran = cli(cluster, "agent", "task", "--bus", bus, "tidy the repo")
    assert ran.code == 0, ran.text
    assert "task at position 0" in ran.stdout
    [raw] = read_bus(cluster, bus)
    assert (raw.type, raw.author) == ("agent_input", "user")
    assert e.parse(raw.type, raw.body) == e.AgentInput("tidy the repo")


def test_mail_records_sender_recipient_text_and_the_true_author(cluster: LocalCluster) -> None:
    bus = new_bus("mail")
    append(cluster, bus, "user", e.AgentInput("tidy"))  # mail goes to a bus that exists
    by_mailer, by_user = cli_many(
        cluster,
        [
            Call(["mail", "--to", bus, "--from", "alice", "first note"]),
            Call(
                ["mail", "--to", bus, "--from", "alice", "--subject", "re", "second note"],
                token=agent_token("user"),
            ),
        ],
    )
    assert by_mailer.code == 0 and by_user.code == 0, by_mailer.text + by_user.text
    assert f"on {bus}" in by_mailer.stdout
    mails = {
        parsed.text: (raw.author, parsed) for raw, parsed in typed(read_bus(cluster, bus), e.Mail)
    }
    assert mails == {
        "first note": ("mailer", e.Mail("alice", bus, "first note")),
        "second note": ("user", e.Mail("alice", bus, "second note", "re")),
    }


# --- vote ---------------------------------------------------------------------------------------


def test_vote_on_an_intent_records_a_human_vote(cluster: LocalCluster) -> None:
    bus = new_bus("vote")
    _, approved, rejected = append(
        cluster, bus, "driver", e.AgentInput("tidy"), shell("ls"), shell("rm notes.txt")
    )
    ran_approve, ran_reject = cli_many(
        cluster,
        [
            Call(
                [
                    "vote",
                    "--bus",
                    bus,
                    "--intent",
                    str(approved),
                    "--approve",
                    "--reason",
                    "harmless listing",
                ]
            ),
            Call(["vote", "--bus", bus, "--intent", str(rejected), "--reject"]),
        ],
    )
    assert ran_approve.code == 0 and ran_reject.code == 0, ran_approve.text + ran_reject.text
    assert f"#{approved}: approved" in ran_approve.stdout
    assert f"#{rejected}: rejected" in ran_reject.stdout
    votes = {
        parsed.intent_id: (raw.author, parsed)
        for raw, parsed in typed(read_bus(cluster, bus), e.Vote)
    }
    assert votes == {
        approved: ("human", e.Vote(approved, "human", "human", "harmless listing", True)),
        rejected: ("human", e.Vote(rejected, "human", "human", "rejected by a person", False)),
    }


def test_vote_on_a_missing_intent_fails_and_appends_nothing(cluster: LocalCluster) -> None:
    bus = new_bus("vote-missing")
    _, intent = append(cluster, bus, "driver", e.AgentInput("tidy"), shell("ls"))
    runs = cli_many(
        cluster,
        [
            Call(["vote", "--bus", bus, "--intent", "99", "--approve"]),  # beyond the tail
            Call(["vote", "--bus", bus, "--intent", "0", "--approve"]),  # the task, no intent
        ],
    )
    for ran in runs:
        assert_clean_failure(ran, "--intent needs an intent of the bus")
    assert [raw.pos for raw in read_bus(cluster, bus)] == [0, intent]


def test_interactive_vote_shows_the_context_and_records_the_answer(
    cluster: LocalCluster,
) -> None:
    bus = new_bus("vote-interactive")
    _, earlier, pending = append(
        cluster,
        bus,
        "driver",
        e.AgentInput("tidy the repo"),
        shell("ls -la"),
        e.Intent(e.ToolCall("shell", {"command": "echo hi"}, "c2"), reasoning="say hello"),
    )
    append(cluster, bus, "decider", e.Commit(earlier, "approved by rules"))

    ran = cli(cluster, "vote", "--bus", bus, stdin="y\nlooks fine\n")
    assert ran.code == 0, ran.text
    assert "task: tidy the repo" in ran.stdout
    assert f"earlier: #{earlier} shell: ls -la → committed" in ran.stdout
    assert f"PROPOSED #{pending}: shell: echo hi" in ran.stdout
    assert "reasoning: say hello" in ran.stdout
    assert f"PROPOSED #{earlier}" not in ran.stdout  # decided already: not offered
    assert f"#{pending}: approved" in ran.stdout
    entries = read_bus(cluster, bus)
    assert [(raw.author, vote) for raw, vote in typed(entries, e.Vote)] == [
        ("human", e.Vote(pending, "human", "human", "looks fine", True))
    ]

    again = cli(cluster, "vote", "--bus", bus)
    assert again.code == 0, again.text
    assert "nothing to vote on" in again.stdout
    assert "PROPOSED" not in again.stdout
    assert len(read_bus(cluster, bus)) == len(entries)


# --- policy -------------------------------------------------------------------------------------


def test_policy_appends_versions_and_a_joint_change_atomically(cluster: LocalCluster) -> None:
    bus = new_bus("policy")
    append(cluster, bus, "user", e.AgentInput("tidy"))
    first = {"kind": "veto", "params": {"kinds": ["rule"]}}
    second = {"kind": "all", "params": {"kinds": ["rule", "llm"]}, "deadline_ms": 30000}
    third = {"kind": "first_voter"}
    voter = {"kind": "llm", "prompt_extra": "Never allow network access."}

    for doc in (first, second):
        ran = cli(cluster, "policy", "--bus", bus, "--decider", json.dumps(doc))
        assert ran.code == 0, ran.text
    both = cli(
        cluster,
        "policy",
        "--bus",
        bus,
        "--decider",
        json.dumps(third),
        "--voter",
        json.dumps(voter),
    )
    assert both.code == 0, both.text
    assert "policy appended at [3, 4]" in both.stdout

    entries = read_bus(cluster, bus)
    policies = [
        (raw.pos, raw.author, e.parse(raw.type, raw.body))
        for raw in entries
        if raw.type in ("decider_policy", "voter_policy")
    ]
    # Each decider policy names who signs votes and who decides (the shipped principals).
    assert policies == [
        (1, "policy", e.DeciderPolicy(1, signed(first))),
        (2, "policy", e.DeciderPolicy(2, signed(second))),
        (3, "policy", e.DeciderPolicy(3, signed(third))),
        (4, "policy", e.VoterPolicy(1, voter)),
    ]
    assert e.DeciderPolicy(1, signed(first)).policy["signers"]["rule"] == "rule-voter"
    state = fold(bus, entries)
    assert state.decider_policies.current.version == 3
    assert not state.invalid


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--decider", '{"kind": "nope"}'], "unknown decider policy kind 'nope'"),
        (["--decider", '{"kind": "veto"'], "bad policy"),  # not JSON
        (
            [
                "--decider",
                '{"kind": "first_voter"}',
                "--voter",
                '{"kind": "rule", "rules": [{"effect": "deny"}]}',
            ],
            "'reason' is required",
        ),
        (["--voter", '{"kind": "rule", "default": "maybe"}'], "bad policy"),
    ],
    ids=["unknown-kind", "bad-json", "valid-decider-bad-voter-rules", "bad-rule-default"],
)
def test_an_invalid_policy_fails_and_appends_nothing(
    cluster: LocalCluster, options: list[str], message: str
) -> None:
    bus = new_bus("policy-bad")
    append(cluster, bus, "user", e.AgentInput("tidy"))
    assert_clean_failure(cli(cluster, "policy", "--bus", bus, *options), message)
    assert [raw.type for raw in read_bus(cluster, bus)] == ["agent_input"]


@pytest.fixture(scope="module")
def refused_policy(cluster: LocalCluster) -> tuple[Ran, str]:
    """``logact policy`` run by the voter principal, which lacks the policy role."""
    bus = new_bus("policy-refused")
    append(cluster, bus, "user", e.AgentInput("tidy"))
    ran = cli(
        cluster,
        "policy",
        "--bus",
        bus,
        "--decider",
        '{"kind": "first_voter"}',
        token=agent_token("voter"),
    )
    return ran, bus


def test_a_principal_without_the_policy_role_is_refused(
    cluster: LocalCluster, refused_policy: tuple[Ran, str]
) -> None:
    ran, bus = refused_policy
    assert ran.code != 0, ran.text
    assert "may not append ['decider_policy']" in ran.text
    assert [raw.type for raw in read_bus(cluster, bus)] == ["agent_input"]


def test_a_refused_policy_is_reported_without_a_traceback(
    refused_policy: tuple[Ran, str],
) -> None:
    ran, _ = refused_policy
    assert_clean_failure(ran, "error: forbidden: principal 'voter' may not append")


def test_policy_on_a_bus_that_does_not_exist_yet_appends_version_1(
    cluster: LocalCluster,
) -> None:
    bus = new_bus("policy-fresh")
    ran = cli(cluster, "policy", "--bus", bus, "--decider", '{"kind": "first_voter"}')
    assert ran.code == 0, ran.text
    [raw] = read_bus(cluster, bus)
    assert e.parse(raw.type, raw.body) == e.DeciderPolicy(1, signed({"kind": "first_voter"}))


# --- a whole agent in one process, and its timeline ---------------------------------------------


@dataclass(frozen=True)
class AgentRun:
    """What ``logact agent run`` left: its bus, its workspace and the finished process."""

    bus: str
    workspace: Path
    ran: Ran


@pytest.fixture(scope="module")
def agent_run(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> AgentRun:
    """``logact agent run`` to completion on a fresh bus with RUN_SCRIPT."""
    tmp = tmp_path_factory.mktemp("agent-run")
    workspace = tmp / "workspace"
    (workspace / "x").mkdir(parents=True)
    (workspace / "x" / "keep.txt").write_text("the vetoed rm -rf must not delete this\n")
    script = tmp / "script.json"
    script.write_text(json.dumps(RUN_SCRIPT))
    rules = tmp / "rules.toml"
    rules.write_text(RULES)
    bus = new_bus("run")
    ran = cli(
        cluster,
        "agent", "run", "--bus", bus, "--workspace", str(workspace), "--task",
        "write hello to notes.txt", "--llm", "script", "--script", str(script), "--rules",
        str(rules), "--scripted-deny", LLM_DENY,
        timeout=RUN_TIMEOUT,
    )  # fmt: skip
    return AgentRun(bus, workspace, ran)


def test_agent_run_runs_a_whole_agent_to_completion(
    cluster: LocalCluster, agent_run: AgentRun
) -> None:
    ran = agent_run.ran
    assert ran.code == 0, ran.text
    assert (agent_run.workspace / "notes.txt").read_text() == "hello"
    assert (agent_run.workspace / "x" / "keep.txt").exists(), "the vetoed rm -rf ran"
    # The timeline table was printed.
    assert f"bus {agent_run.bus}" in ran.stdout
    assert "ABORT" in ran.stdout and "recursive or forced rm" in ran.stdout

    state = fold(agent_run.bus, read_bus(cluster, agent_run.bus))
    [(task_raw, task)] = state.of_type(e.AgentInput)
    assert (task_raw.author, task.text) == ("user", "write hello to notes.txt")
    written, vetoed = state.intents.values()
    assert written.intent.action == e.ToolCall(
        "write_file", {"path": "notes.txt", "content": "hello"}, "c1"
    )
    assert written.committed and written.result is not None and written.result.ok
    assert vetoed.intent.action == e.ToolCall("shell", {"command": "rm -rf x"}, "c2")
    assert vetoed.aborted and vetoed.exec_start is None and vetoed.result is None
    assert {v.voter_id: v.approve for _, v in vetoed.votes} == {"rules": False, "llm": True}
    [(_, output)] = state.of_type(e.AgentOutput)
    assert output.text == "done: wrote notes.txt" and output.input_id == task_raw.pos
    assert not state.invalid


def test_timeline_json_summarises_the_bus(cluster: LocalCluster, agent_run: AgentRun) -> None:
    assert agent_run.ran.code == 0, agent_run.ran.text
    ran = cli(cluster, "agent", "timeline", "--bus", agent_run.bus, "--json")
    assert ran.code == 0, ran.text
    entries = read_bus(cluster, agent_run.bus)
    usage = [out.usage for _, out in typed(entries, e.InfOut)]
    assert all(u is not None for u in usage)
    assert json.loads(ran.stdout) == {
        "entries": len(entries),
        "model_calls": 3,
        "prompt_tokens": sum(u.prompt_tokens for u in usage),
        "completion_tokens": sum(u.completion_tokens for u in usage),
        "intents": 2,
        "committed": 1,
        "aborted": 1,
        "executed_ok": 1,
        "failed": 0,
        "in_doubt": 0,
        "undecided": 0,
        "invalid": 0,
        "forged": 0,
    }


# --- bad input to the components ----------------------------------------------------------------


def test_component_options_are_checked_before_running(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    bus = new_bus("bad-input")
    (tmp_path / "labels.toml").write_text('[outputs.t]\n"a..b" = "trusted"\n')
    bad_policy, missing_rules, no_labels, bad_labels = cli_many(
        cluster,
        [
            Call(["agent", "decider", "--bus", bus, "--policy", '{"kind": "nope"}']),
            Call(["agent", "voter", "--bus", bus, "--kind", "rule", "--rules", "missing.toml"]),
            Call(["agent", "voter", "--bus", bus, "--kind", "ifc"]),
            Call(["agent", "voter", "--bus", bus, "--kind", "ifc", "--labels", "labels.toml"]),
        ],
        cwd=tmp_path,
    )
    assert_clean_failure(bad_policy, "bad decider policy")
    assert "unknown decider policy kind 'nope'" in bad_policy.text
    assert_clean_failure(missing_rules, "rules missing.toml")
    assert "No such file" in missing_rules.text
    assert_clean_failure(no_labels, "--kind ifc needs --labels FILE")
    assert_clean_failure(bad_labels, "bad field pattern 'a..b'")
    assert read_bus(cluster, bus) == []


def test_decider_policy_from_a_missing_file_is_a_clear_error(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    ran = cli(
        cluster,
        "agent",
        "decider",
        "--bus",
        new_bus("bad-input"),
        "--policy",
        "@missing.json",
        cwd=tmp_path,
    )
    assert_clean_failure(ran, "bad decider policy")


# --- bus text is printed as text ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["vote", "timeline"])
def test_markup_like_text_in_an_action_is_printed_verbatim(
    cluster: LocalCluster, command: str
) -> None:
    bus = new_bus("markup")
    _, intent = append(
        cluster, bus, "driver", e.AgentInput("count"), shell('grep -c "[/x]" notes.txt')
    )
    if command == "vote":
        ran = cli(cluster, "vote", "--bus", bus, stdin="n\nno\n")
    else:
        ran = cli(cluster, "agent", "timeline", "--bus", bus)
    assert ran.code == 0, ran.text
    assert '"[/x]"' in ran.stdout
    if command == "vote":
        assert [v.intent_id for _, v in typed(read_bus(cluster, bus), e.Vote)] == [intent]
