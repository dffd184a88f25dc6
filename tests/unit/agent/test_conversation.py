"""The driver's pure core (agent/components/conversation.py): ``plan`` over hand-built buses.

Each test writes the entries a driver, voters, decider, executor and mailer would have written,
folds them into a :class:`BusState` and checks the driver's next move and the messages it would
send. ``drive`` plays a whole driver against ``plan`` (appending exactly what
agent/components/driver.py
appends) for the properties that span many turns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.agent.components.conversation import (
    Finish,
    Idle,
    Infer,
    Move,
    Propose,
    Settings,
    Wait,
    actions_of,
    parse_arguments,
    plan,
)
from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.agent.models.llm import tool_call
from logact.protocol.codec import Entry

BUS = "agent/conv"
MODEL = "scripted"
SYSTEM = "You are a careful agent."
SETTINGS = Settings(SYSTEM)

Message = dict[str, Any]


class Bus:
    """A hand-built bus, folded as it grows."""

    def __init__(self, bus: str = BUS) -> None:
        self.state = BusState(bus)

    def add(self, entry: e.AgentEntry, author: str = "local") -> int:
        pos = self.state.next
        self.state.apply(Entry(pos, 1000 + pos, entry.TYPE, author, entry.to_body()))
        return pos

    def task(self, text: str = "list the files") -> int:
        return self.add(e.AgentInput(text))

    def mail(
        self, text: str, *, to: str = BUS, sender: str = "bob", subject: str | None = None
    ) -> int:
        return self.add(e.Mail(sender, to, text, subject))

    def inf_in(self, *messages: Message) -> int:
        return self.add(e.InfIn(MODEL, messages))

    def reply(self, content: str | None = None, *calls: dict[str, Any]) -> int:
        message: Message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = list(calls)
        return self.add(e.InfOut(MODEL, message))

    def intent(self, tool: str, call_id: str, **arguments: Any) -> int:
        return self.add(e.Intent(e.ToolCall(tool, arguments, call_id)))

    def run(self, intent_id: int, output: str = "done") -> None:
        """Commit, start and finish ``intent_id`` successfully."""
        self.add(e.Commit(intent_id, "ok"))
        self.add(e.ExecStart(intent_id))
        self.add(e.Result(intent_id, ok=True, output=output))

    def plan(self, settings: Settings = SETTINGS) -> Move:
        return plan(self.state, settings)


def call(name: str, call_id: str, **arguments: Any) -> dict[str, Any]:
    return tool_call(name, arguments, call_id)


def system() -> Message:
    return {"role": "system", "content": SYSTEM}


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def tool(call_id: str, text: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def started(bus: Bus, task: str = "list the files") -> None:
    """A bus whose first inference is logged: the system prompt and the task."""
    bus.task(task)
    bus.inf_in(system(), user(task))


# --- a whole driver played against plan ---------------------------------------------------------

Model = Callable[[list[Message]], Message]
Outcome = Callable[[Bus, int], None]


def drive(bus: Bus, model: Model, outcome: Outcome, settings: Settings = SETTINGS) -> list[Move]:
    """Play the driver until it is idle: append what Driver appends for each move.

    ``outcome(bus, intent_id)`` plays the voters, decider and executor for a waiting intent.
    """
    moves: list[Move] = []
    for _ in range(200):
        move = plan(bus.state, settings)
        moves.append(move)
        match move:
            case Infer():
                if move.new:
                    bus.add(e.InfIn(MODEL, tuple(move.new)))
                reply = {"role": "assistant", "content": None, **model(move.conversation)}
                bus.add(e.InfOut(MODEL, reply))
                actions = actions_of(reply, settings.code_actions)
                if actions:
                    bus.add(e.Intent(actions[0]))
            case Propose():
                bus.add(move.intent)
            case Wait():
                outcome(bus, move.intent_id)
            case Finish():
                bus.add(e.AgentOutput(move.text, move.input_id))
            case Idle():
                return moves
    raise AssertionError(f"the driver did not settle: {moves[-5:]}")


def run_everything(bus: Bus, intent_id: int) -> None:
    bus.run(intent_id, f"output of #{intent_id}")


def logged_messages(state: BusState) -> list[Message]:
    """inf_in messages and inf_out replies, concatenated in log order."""
    out: list[Message] = []
    for _, entry in state.entries:
        if isinstance(entry, e.InfIn):
            out.extend(entry.messages)
        elif isinstance(entry, e.InfOut):
            out.append(entry.message)
    return out


def unanswered_tool_calls(conversation: Sequence[Message]) -> list[str]:
    """Tool call ids of assistant messages not answered by tool messages right after them (the
    chat API rejects such a conversation)."""
    missing: list[str] = []
    for index, message in enumerate(conversation):
        ids = [c["id"] for c in message.get("tool_calls") or []]
        answered: set[str] = set()
        for later in conversation[index + 1 :]:
            if later.get("role") != "tool":
                break
            answered.add(later["tool_call_id"])
        missing += [i for i in ids if i not in answered]
    return missing


# --- starting ---------------------------------------------------------------------------------


def test_an_empty_bus_is_idle() -> None:
    assert Bus().plan() == Idle()


def test_mail_for_another_bus_and_foreign_entries_do_not_wake_the_driver() -> None:
    bus = Bus()
    bus.mail("hello", to="agent/someone-else")
    bus.add(e.Vote(0, "v", "rule", "stray vote", True))
    bus.state.apply(Entry(bus.state.next, 1, "note", "x", {"text": "not an agent entry"}))
    assert bus.plan() == Idle()


def test_first_inference_holds_the_system_prompt_and_the_task() -> None:
    bus = Bus()
    bus.task("count the lines of data.csv")
    move = bus.plan()
    assert move == Infer(
        [system(), user("count the lines of data.csv")],
        [system(), user("count the lines of data.csv")],
    )


def test_tasks_given_before_the_first_inference_go_into_it_in_order() -> None:
    bus = Bus()
    bus.task("first")
    bus.task("second")
    move = bus.plan()
    assert isinstance(move, Infer)
    assert move.new == [system(), user("first"), user("second")]


# --- tool calls -------------------------------------------------------------------------------


def test_tool_calls_become_intents_one_at_a_time_in_order() -> None:
    bus = Bus()
    started(bus)
    bus.reply("two steps", call("shell", "c1", command="ls"), call("read_file", "c2", path="a"))
    # The driver appends the first intent with the reply; a bus without it proposes it.
    assert bus.plan() == Propose(e.Intent(e.ToolCall("shell", {"command": "ls"}, "c1")))
    first = bus.intent("shell", "c1", command="ls")
    assert bus.plan() == Wait(first)
    bus.run(first)
    assert bus.plan() == Propose(e.Intent(e.ToolCall("read_file", {"path": "a"}, "c2")))
    second = bus.intent("read_file", "c2", path="a")
    assert bus.plan() == Wait(second)


def test_the_driver_waits_until_the_intent_is_closed() -> None:
    bus = Bus()
    started(bus)
    bus.reply(None, call("shell", "c1", command="ls"))
    pos = bus.intent("shell", "c1", command="ls")
    assert bus.plan() == Wait(pos)  # undecided
    bus.add(e.Vote(pos, "rules", "rule", "fine", True))
    assert bus.plan() == Wait(pos)  # votes are not a decision
    bus.add(e.Commit(pos, "ok"))
    assert bus.plan() == Wait(pos)  # committed, not run
    bus.add(e.ExecStart(pos))
    assert bus.plan() == Wait(pos)  # running
    bus.add(e.Result(pos, ok=True, output="a.txt\n"))
    assert isinstance(bus.plan(), Infer)


def test_results_become_tool_messages_with_their_call_ids() -> None:
    bus = Bus()
    started(bus)
    bus.reply(None, call("shell", "c1", command="ls"), call("shell", "c2", command="true"))
    first = bus.intent("shell", "c1", command="ls")
    bus.run(first, "a.txt\n")
    second = bus.intent("shell", "c2", command="true")
    bus.run(second, "")
    move = bus.plan()
    assert isinstance(move, Infer)
    assert move.new == [tool("c1", "a.txt\n"), tool("c2", "(no output)")]


def test_a_failed_result_is_reported_and_the_next_call_still_proposed() -> None:
    bus = Bus()
    started(bus)
    bus.reply(None, call("shell", "c1", command="false"), call("shell", "c2", command="ls"))
    first = bus.intent("shell", "c1", command="false")
    bus.add(e.Commit(first, "ok"))
    bus.add(e.ExecStart(first))
    bus.add(e.Result(first, ok=False, output="partial", error="exit status 1"))
    assert bus.plan() == Propose(e.Intent(e.ToolCall("shell", {"command": "ls"}, "c2")))
    second = bus.intent("shell", "c2", command="ls")
    bus.run(second, "x")
    move = bus.plan()
    assert isinstance(move, Infer)
    assert move.new == [tool("c1", "ERROR: exit status 1\npartial"), tool("c2", "x")]


def test_after_an_abort_the_rest_of_the_reply_is_not_run() -> None:
    bus = Bus()
    started(bus)
    bus.reply(
        "three steps",
        call("shell", "c1", command="ls"),
        call("shell", "c2", command="rm -rf /"),
        call("shell", "c3", command="echo hi"),
    )
    first = bus.intent("shell", "c1", command="ls")
    bus.run(first, "a.txt")
    second = bus.intent("shell", "c2", command="rm -rf /")
    bus.add(e.Abort(second, "vetoed by rules (rule): recursive delete"))
    move = bus.plan()
    assert isinstance(move, Infer), "c3 must not be proposed"
    assert move.new == [
        tool("c1", "a.txt"),
        tool("c2", "ABORTED, not run: vetoed by rules (rule): recursive delete"),
        tool("c3", "NOT RUN: an earlier action of this reply was aborted or is in doubt."),
    ]
    assert len(bus.state.intents) == 2


def test_an_in_doubt_result_is_reported_and_the_rest_not_run() -> None:
    bus = Bus()
    started(bus)
    bus.reply(None, call("shell", "c1", command="make"), call("shell", "c2", command="ls"))
    first = bus.intent("shell", "c1", command="make")
    bus.add(e.Commit(first, "ok"))
    bus.add(e.ExecStart(first))
    bus.add(e.Result(first, ok=False, error="interrupted mid-run", in_doubt=True))
    move = bus.plan()
    assert isinstance(move, Infer)
    answers, brief = move.new[:2], move.new[2:]
    assert answers == [
        tool("c1", "IN DOUBT: interrupted mid-run"),
        tool("c2", "NOT RUN: an earlier action of this reply was aborted or is in doubt."),
    ]
    # then the recovery brief: what was in flight, what came before, what to do
    (message,) = brief
    assert message["role"] == "user" and message["content"].startswith("RECOVERY BRIEF")
    assert f"Interrupted: #{first} shell: make" in message["content"]
    assert "examine the environment" in message["content"]
    assert "task: " in message["content"]  # the digest of the bus before it


def test_unparsable_arguments_are_kept_visibly() -> None:
    bus = Bus()
    started(bus)
    broken = {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{ls"}}
    listed = {"id": "c2", "type": "function", "function": {"name": "shell", "arguments": "[1]"}}
    bus.reply(None, broken, listed)
    assert bus.plan() == Propose(
        e.Intent(e.ToolCall("shell", {"_unparsed_arguments": "{ls"}, "c1"))
    )
    assert actions_of(bus.state.entries[-1][1].message, False)[1] == e.ToolCall(  # type: ignore[union-attr]
        "shell", {"_unparsed_arguments": "[1]"}, "c2"
    )


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ('{"command": "ls"}', {"command": "ls"}),
        ({"already": "a map"}, {"already": "a map"}),
        ("", {}),
        ("   ", {}),
        (None, {}),
        ("{not json", {"_unparsed_arguments": "{not json"}),
        ('"a string"', {"_unparsed_arguments": '"a string"'}),
        ("[1, 2]", {"_unparsed_arguments": "[1, 2]"}),
    ],
)
def test_parse_arguments(raw: Any, parsed: dict[str, Any]) -> None:
    assert parse_arguments(raw) == parsed


def test_calls_without_id_or_name_get_stand_ins() -> None:
    message = {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}, {}]}
    assert actions_of(message, False) == [
        e.ToolCall("?", {}, "call_0"),
        e.ToolCall("?", {}, "call_1"),
    ]


# --- inferences -------------------------------------------------------------------------------


def test_a_logged_inference_without_reply_is_redone_without_logging_it_again() -> None:
    bus = Bus()
    started(bus)
    bus.reply(None, call("shell", "c1", command="ls"))
    pos = bus.intent("shell", "c1", command="ls")
    bus.run(pos, "a.txt")
    bus.inf_in(tool("c1", "a.txt"))  # logged; the driver died before the reply
    bus.mail("later news")  # arrives meanwhile: not part of the logged inference
    move = bus.plan()
    assert move == Infer(logged_messages(bus.state), [])
    assert move.conversation[-1] == tool("c1", "a.txt")
    bus.reply(None, call("shell", "c2", command="pwd"))
    bus.run(bus.intent("shell", "c2", command="pwd"), "/work")
    move = bus.plan()
    assert isinstance(move, Infer)
    assert move.new == [tool("c2", "/work"), user("Mail from bob: later news")]


def test_a_first_inference_without_reply_is_redone_too() -> None:
    bus = Bus()
    started(bus, "hello")
    assert bus.plan() == Infer([system(), user("hello")], [])


def test_an_inference_given_up_on_is_not_redone() -> None:
    bus = Bus()
    started(bus)
    bus.add(e.AgentOutput("stopped: the model failed 3 times", 0))
    assert bus.plan() == Idle()


def test_a_reply_without_actions_finishes_and_agent_output_ends_the_loop() -> None:
    bus = Bus()
    task = bus.task("say hi")
    bus.inf_in(system(), user("say hi"))
    bus.reply("hi!")
    assert bus.plan() == Finish("hi!", task)
    bus.add(e.AgentOutput("hi!", task))
    assert bus.plan() == Idle()


def test_an_empty_final_reply_finishes_with_empty_text() -> None:
    bus = Bus()
    task = bus.task()
    bus.inf_in(system(), user("list the files"))
    bus.reply(None)
    assert bus.plan() == Finish("", task)


def test_the_step_limit_finishes_the_loop() -> None:
    limited = Settings(SYSTEM, max_steps=2)
    bus = Bus()
    task = bus.task()
    bus.inf_in(system(), user("list the files"))
    bus.reply(None, call("shell", "c1", command="ls"))
    bus.run(bus.intent("shell", "c1", command="ls"))
    assert isinstance(bus.plan(limited), Infer)  # one reply so far: go on
    bus.inf_in(tool("c1", "done"))
    bus.reply(None, call("shell", "c2", command="ls"))
    pos = bus.intent("shell", "c2", command="ls")
    assert bus.plan(limited) == Wait(pos)  # the action in flight still completes
    bus.run(pos)
    assert bus.plan(limited) == Finish("stopped: step limit of 2 model replies reached", task)


# --- mail -------------------------------------------------------------------------------------


def test_mail_while_busy_is_buffered_after_the_tool_messages_of_the_turn() -> None:
    bus = Bus()
    started(bus)
    bus.reply(None, call("shell", "c1", command="ls"), call("shell", "c2", command="pwd"))
    first = bus.intent("shell", "c1", command="ls")
    bus.mail("stop after this", subject="urgent")
    assert bus.plan() == Wait(first)  # mail does not interrupt an action in flight
    bus.run(first, "a.txt")
    bus.mail("also: use tabs", sender="carol")
    assert isinstance(bus.plan(), Propose)  # nor the rest of the reply
    second = bus.intent("shell", "c2", command="pwd")
    bus.run(second, "/work")
    move = bus.plan()
    assert isinstance(move, Infer)
    assert move.new == [
        tool("c1", "a.txt"),
        tool("c2", "/work"),
        user("Mail from bob [urgent]: stop after this"),
        user("Mail from carol: also: use tabs"),
    ]
    bus.inf_in(*move.new)
    bus.reply("ok")
    assert bus.plan() == Finish("ok", 0)  # the buffered mail was consumed


def test_mail_to_an_idle_driver_starts_a_new_loop() -> None:
    bus = Bus()
    task = bus.task("say hi")
    bus.inf_in(system(), user("say hi"))
    bus.reply("hi!")
    bus.add(e.AgentOutput("hi!", task))
    mail = bus.mail("how are you?", sender="alice")
    move = bus.plan()
    assert isinstance(move, Infer)
    assert move.new == [user("Mail from alice: how are you?")]  # no second system prompt
    assert move.conversation == [*logged_messages(bus.state), *move.new]
    bus.inf_in(*move.new)
    bus.reply("fine")
    assert bus.plan() == Finish("fine", mail)


def test_a_new_task_after_the_loop_ended_starts_a_new_loop_with_fresh_steps() -> None:
    limited = Settings(SYSTEM, max_steps=1)
    bus = Bus()
    first = bus.task("one")
    bus.inf_in(system(), user("one"))
    bus.reply("done one")
    bus.add(e.AgentOutput("done one", first))
    second = bus.task("two")
    move = bus.plan(limited)
    assert isinstance(move, Infer) and move.new == [user("two")]
    bus.inf_in(user("two"))
    bus.reply("done two")
    assert bus.plan(limited) == Finish("done two", second)


# --- code actions -----------------------------------------------------------------------------


def test_a_fenced_code_block_becomes_an_intent_and_its_output_a_user_message() -> None:
    code = Settings(SYSTEM, code_actions=True)
    bus = Bus()
    started(bus)
    bus.reply("Let me look.\n```python\nprint(6 * 7)\n```\nand then more text")
    intent = e.Intent(e.CodeBlock("python", "print(6 * 7)\n"))
    assert bus.plan(code) == Propose(intent)
    pos = bus.add(intent)
    assert bus.plan(code) == Wait(pos)
    bus.run(pos, "42\n")
    move = bus.plan(code)
    assert isinstance(move, Infer)
    assert move.new == [user("Output of your code block:\n42\n")]


def test_an_aborted_code_block_is_reported_as_a_user_message() -> None:
    code = Settings(SYSTEM, code_actions=True)
    bus = Bus()
    started(bus)
    bus.reply("```bash\nrm -rf /\n```")
    pos = bus.add(e.Intent(e.CodeBlock("bash", "rm -rf /\n")))
    bus.add(e.Abort(pos, "vetoed"))
    move = bus.plan(code)
    assert isinstance(move, Infer)
    assert move.new == [user("Output of your code block:\nABORTED, not run: vetoed")]


def test_code_blocks_are_plain_text_without_code_actions_or_with_tool_calls() -> None:
    bus = Bus()
    started(bus)
    task_reply = "Here is how:\n```python\nprint(1)\n```"
    bus.reply(task_reply)
    assert bus.plan() == Finish(task_reply, 0)
    message = {
        "role": "assistant",
        "content": "```python\nprint(1)\n```",
        "tool_calls": [call("shell", "c1", command="ls")],
    }
    assert actions_of(message, True) == [e.ToolCall("shell", {"command": "ls"}, "c1")]
    assert actions_of({"role": "assistant", "content": "```\nno language\n```"}, True) == []


# --- the conversation is the log -------------------------------------------------------------

REPLIES = st.lists(
    st.one_of(
        st.text(max_size=20).map(lambda text: {"content": text}),
        st.lists(st.sampled_from(["ls", "pwd", "rm -rf /", "make"]), min_size=1, max_size=3).map(
            lambda commands: {"content": None, "commands": commands}
        ),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(REPLIES, st.data())
def test_the_conversation_is_the_concatenation_of_logged_messages(
    replies: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Every inference sends exactly the logged inf_in / inf_out messages plus its new ones,
    answers every tool call before anything else, and the agent always ends with agent_output."""
    bus = Bus()
    bus.task("work")
    turn = 0
    ids = iter(range(1000))

    def model(conversation: list[Message]) -> Message:
        nonlocal turn
        reply = replies[turn] if turn < len(replies) else {"content": "finished"}
        turn += 1
        if "commands" not in reply:
            return reply
        calls = [call("shell", f"id{next(ids)}", command=c) for c in reply["commands"]]
        return {"content": None, "tool_calls": calls}

    def outcome(bus: Bus, intent_id: int) -> None:
        kind = data.draw(st.sampled_from(["ok", "abort", "in_doubt", "error"]))
        if data.draw(st.booleans()):
            bus.mail(f"mail {intent_id}")
        if kind == "abort":
            bus.add(e.Abort(intent_id, "no"))
            return
        bus.add(e.Commit(intent_id, "ok"))
        bus.add(e.ExecStart(intent_id))
        if kind == "ok":
            bus.add(e.Result(intent_id, ok=True, output="fine"))
        else:
            bus.add(e.Result(intent_id, ok=False, error="bad", in_doubt=kind == "in_doubt"))

    moves = drive(bus, model, outcome)
    infers = [m for m in moves if isinstance(m, Infer)]
    assert len(infers) == turn
    for move in infers:
        assert unanswered_tool_calls(move.conversation) == []
    # Each inference sent what was logged before it plus its own inf_in, which it logged.
    so_far: list[Message] = []
    sent = iter(infers)
    for _, entry in bus.state.entries:
        if isinstance(entry, e.InfIn):
            move = next(sent)
            assert list(entry.messages) == move.new
            assert move.conversation == [*so_far, *move.new]
            so_far.extend(entry.messages)
        elif isinstance(entry, e.InfOut):
            so_far.append(entry.message)
    assert next(sent, None) is None
    assert so_far == logged_messages(bus.state)
    assert isinstance(moves[-2], Finish) and isinstance(bus.state.entries[-1][1], e.AgentOutput)


# --- regressions (bugs found by these tests, now fixed) ---------------------------------------


def test_tool_calls_cut_off_by_the_step_limit_are_answered_before_the_next_loop() -> None:
    limited = Settings(SYSTEM, max_steps=1)
    bus = Bus()
    task = bus.task()
    bus.inf_in(system(), user("list the files"))
    bus.reply(None, call("shell", "c1", command="ls"))
    bus.run(bus.intent("shell", "c1", command="ls"), "a.txt")
    move = bus.plan(limited)
    assert isinstance(move, Finish)
    bus.add(e.AgentOutput(move.text, task))
    bus.mail("one more thing")
    move = bus.plan(limited)
    assert isinstance(move, Infer)
    assert unanswered_tool_calls(move.conversation) == []


def test_mail_arriving_during_the_final_inference_is_not_dropped() -> None:
    bus = Bus()
    bus.task("say hi")
    bus.inf_in(system(), user("say hi"))
    bus.mail("please also say bye")  # while the model is answering
    bus.reply("hi!")
    drive(bus, lambda conversation: {"content": "ok"}, run_everything)
    sent = [m["content"] for _, inf_in in bus.state.of_type(e.InfIn) for m in inf_in.messages]
    assert "Mail from bob: please also say bye" in sent


def test_drive_helper_runs_a_plain_task_to_the_end() -> None:
    """The simulator itself: a two-call reply, then a final answer."""
    bus = Bus()
    task = bus.task("look around")
    replies = iter(
        [
            {"tool_calls": [call("shell", "a", command="ls"), call("shell", "b", command="pwd")]},
            {"content": "seen it"},
        ]
    )
    moves = drive(bus, lambda conversation: next(replies), run_everything)
    assert [type(m).__name__ for m in moves] == [
        "Infer",
        "Wait",
        "Propose",
        "Wait",
        "Infer",
        "Finish",
        "Idle",
    ]
    assert moves[-2] == Finish("seen it", task)
    second = moves[4]
    assert isinstance(second, Infer)
    assert second.new == [tool("a", "output of #3"), tool("b", "output of #7")]


# --- a restarted driver -------------------------------------------------------------------------


def test_a_resumed_driver_briefs_only_a_loop_already_under_way() -> None:
    bus = Bus()
    assert plan(bus.state, SETTINGS, resumed=True) == Idle()
    bus.task("list the files")
    first = plan(bus.state, SETTINGS, resumed=True)
    assert isinstance(first, Infer) and first.new == [system(), user("list the files")]
    bus.inf_in(system(), user("list the files"))
    assert plan(bus.state, SETTINGS, resumed=True) == Infer([system(), user("list the files")], [])
    bus.reply(None, call("shell", "c1", command="ls"))
    pos = bus.intent("shell", "c1", command="ls")
    assert plan(bus.state, SETTINGS, resumed=True) == Wait(pos)  # the brief waits for inference
    bus.run(pos, "a.txt")
    move = plan(bus.state, SETTINGS, resumed=True)
    assert isinstance(move, Infer) and move.new[0] == tool("c1", "a.txt")
    (brief,) = move.new[1:]
    assert brief["role"] == "user" and brief["content"].startswith("RESUMED")
    assert "task: list the files" in brief["content"] and "shell: ls -> OK" in brief["content"]
    assert move.conversation[-2:] == move.new
    assert plan(bus.state, SETTINGS) == Infer(move.conversation[:-2] + move.new[:1], move.new[:1])


def test_a_resumed_driver_redoing_a_lost_reply_logs_the_brief_first() -> None:
    bus = Bus()
    started(bus)
    bus.reply(None, call("shell", "c1", command="ls"))
    bus.run(bus.intent("shell", "c1", command="ls"), "a.txt")
    bus.inf_in(tool("c1", "a.txt"))  # logged; the reply was lost with the old driver
    move = plan(bus.state, SETTINGS, resumed=True)
    assert isinstance(move, Infer) and len(move.new) == 1
    assert move.new[0]["content"].startswith("RESUMED")
    assert move.conversation == [*logged_messages(bus.state), *move.new]
