"""The README's Python example appends an intent the agent runtime accepts: the body of its
``log.append(..., "intent", ...)`` call, read from README.md itself, parses as an intent and
folds into the bus as one (a body the runtime does not understand would be set aside as
invalid, silently, and nothing would ever vote on it)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from logact.agent.core import entries as e
from logact.agent.core.bus import BusState
from logact.protocol.codec import Entry

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_intent_body() -> Any:
    """The body the README's Python example appends as an intent, its names filled in from
    the literal assignments before it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    [block] = [b for b in blocks if '"intent"' in b and ".append(" in b]
    tree = ast.parse(block)
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    names[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue  # not a literal (a call's result): not part of the body
    [call] = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "append"
        and len(node.args) == 3
        and isinstance(node.args[1], ast.Constant)
        and node.args[1].value == "intent"
    ]
    body = ast.Expression(call.args[2])
    return eval(compile(body, "README.md", "eval"), {"__builtins__": {}}, names)


def test_the_readme_appends_an_intent_the_runtime_accepts() -> None:
    body = readme_intent_body()
    intent = e.parse("intent", body)
    assert isinstance(intent, e.Intent)
    assert intent.action == e.ToolCall("shell", {"command": "ls"})
    state = BusState("agent/1")
    state.apply(Entry(0, 1000, "intent", "app", body))
    assert list(state.intents) == [0] and not state.invalid
