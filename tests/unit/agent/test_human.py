"""The human voter (agent/components/human.py): which intents a person's vote still counts on,
and the answer appended as a vote of the kind that answers escalations."""

from __future__ import annotations

from logact.agent.components import human
from logact.agent.core import entries as e
from logact.agent.core.policy import ESCALATION_KIND
from logact.agent.core.replay import read_state
from logact.server.local import LocalLog

BUS = "agent/human"


def shell(command: str) -> e.Intent:
    return e.Intent(e.ToolCall("shell", {"command": command}, "c1"))


async def test_a_vote_counts_only_on_an_undecided_intent_not_yet_voted_on(
    memory_log: LocalLog,
) -> None:
    task = await memory_log.append(BUS, *e.AgentInput("tidy").to_entry())
    decided, voted, open_ = [
        await memory_log.append(BUS, *shell(c).to_entry()) for c in ("ls", "pwd", "rm x")
    ]
    await memory_log.append(BUS, *e.Commit(decided, "ok").to_entry())
    await human.cast(memory_log, BUS, "alice", human.Answer(voted, True))
    state = await read_state(memory_log, BUS)
    assert [r.position for r in human.pending(state, "alice")] == [open_]
    assert human.counts(state, open_, "alice")
    assert human.counts(state, voted, "bob")  # another person's first vote still counts
    for position in (decided, voted, task, 99):
        assert not human.counts(state, position, "alice"), position


async def test_an_answer_is_appended_as_a_human_vote_with_a_reason(memory_log: LocalLog) -> None:
    await memory_log.append(BUS, *e.AgentInput("tidy").to_entry())
    approved, rejected = [
        await memory_log.append(BUS, *shell(c).to_entry()) for c in ("ls", "rm x")
    ]
    first = await human.cast(memory_log, BUS, "human", human.Answer(approved, True, "harmless"))
    await human.cast(memory_log, BUS, "human", human.Answer(rejected, False, ""))
    state = await read_state(memory_log, BUS)
    votes = {position: [v for _, v in state.intents[position].votes] for position in state.intents}
    assert votes == {
        approved: [e.Vote(approved, "human", ESCALATION_KIND, "harmless", True)],
        rejected: [e.Vote(rejected, "human", ESCALATION_KIND, "rejected by a person", False)],
    }
    assert first == rejected + 1  # appended in order, after the intents
    assert human.Answer(approved, True).vote("h").reason == "approved by a person"


def test_only_the_listed_words_are_answers_and_yes_is_never_a_skip() -> None:
    for said in ("y", "yes", "YES", " Yes "):
        assert human.understood(said) == human.APPROVE, said
    for said in ("n", "no", "No"):
        assert human.understood(said) == human.REJECT, said
    for said in ("s", "skip", "SKIP"):
        assert human.understood(said) == human.SKIP, said
    for said in ("", "ye", "yess", "maybe", "approve", "0", "y n"):
        assert human.understood(said) is None, said
