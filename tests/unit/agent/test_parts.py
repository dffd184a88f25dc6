"""An agent's parts from plain settings (agent/integrations/parts.py): the operator hears about a
missing sandbox before the first action, each watched bus acts in a directory of its own that
no bus id can leave, rules default to allowing, deny specs parse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from logact.agent.core import entries as e
from logact.agent.integrations import parts
from logact.agent.judgement.rules import RuleError
from logact.protocol.codec import BUS_ID


def test_unsandboxed_tools_come_with_a_warning(tmp_path: Path) -> None:
    workspace = tmp_path / "new" / "ws"
    tools, warning = parts.executor_tools(workspace, sandboxed=False)
    assert workspace.is_dir() and "shell" in tools
    assert warning is not None and "WITHOUT a sandbox" in warning


def test_a_sandbox_that_cannot_run_here_is_reported_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parts, "sandbox_unavailable", lambda: "bwrap is missing")
    tools, warning = parts.executor_tools(tmp_path, shell_timeout=5)
    assert "shell" in tools
    assert warning == "shell actions will be refused: bwrap is missing"
    monkeypatch.setattr(parts, "sandbox_unavailable", lambda: None)
    assert parts.executor_tools(tmp_path)[1] is None


@pytest.mark.parametrize(
    ("bus", "name"),
    [
        ("demo.a", "demo.a"),
        ("agent/7", "agent%2F7"),
        ("..", "%2E."),
        (".", "%2E"),
        ("../x", "%2E.%2Fx"),
        ("a/../../b", "a%2F..%2F..%2Fb"),
        ("/", "%2F"),
        (".hidden", "%2Ehidden"),
        ("a..b", "a..b"),
    ],
)
def test_a_bus_workspace_is_one_directory_inside_the_root(bus: str, name: str) -> None:
    root = Path("/srv/ws")
    path = parts.bus_workspace(root, bus)
    assert path == root / name
    assert path.parent == root and os.path.normpath(path) == str(path)


def test_distinct_buses_get_distinct_workspaces_even_when_too_long_to_spell_out() -> None:
    root = Path("/ws")
    longest = ["/" * 256, "/" * 255 + "a", "/" * 255 + "b", "a" * 256, "a" * 255 + "."]
    buses = [*longest, "%2F", "a/b", "a%2Fb", ".a", "%2Ea"]
    valid = [bus for bus in buses if BUS_ID.fullmatch(bus)]
    assert len(valid) == len(longest) + 2  # '%' is in no bus id
    names = [parts.bus_workspace(root, bus).name for bus in valid]
    assert len(set(names)) == len(names)
    assert all(len(name.encode()) <= 255 and "/" not in name for name in names)
    assert names[0].endswith(tuple("0123456789abcdef")) and "~" in names[0]


@pytest.mark.parametrize("bus", ["", "a b", "a%2Fb", "x\\0", "é", "a" * 257])
def test_what_is_not_a_bus_id_has_no_workspace(bus: str) -> None:
    with pytest.raises(ValueError, match="not a bus id"):
        parts.bus_workspace(Path("/ws"), bus)


async def test_bus_tools_act_in_the_bus_directory_made_on_first_use(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    tools = parts.bus_tools(root, "../escape", sandboxed=False)
    with trio.fail_after(10):
        outcome = await tools.run(e.ToolCall("write_file", {"path": "f.txt", "content": "x"}))
    assert outcome.ok, outcome
    assert (root / "%2E.%2Fescape" / "f.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["%2E.%2Fescape", "f.txt", "ws"]


def test_rules_default_to_allowing_everything(tmp_path: Path) -> None:
    rules = parts.rules_or_allow_all(None)
    assert rules.evaluate(e.ToolCall("shell", {"command": "rm -rf /"}), "agent/x").approve
    with pytest.raises(OSError):
        parts.rules_or_allow_all(str(tmp_path / "missing.toml"))
    (tmp_path / "bad.toml").write_text('default = "maybe"\n')
    with pytest.raises(RuleError):
        parts.rules_or_allow_all(str(tmp_path / "bad.toml"))


def test_deny_specs_pair_a_text_with_its_reason() -> None:
    assert parts.deny_pairs(["rm -rf=destroys files", "curl", "a=b=c"]) == [
        ("rm -rf", "destroys files"),
        ("curl", "mentions 'curl'"),
        ("a", "b=c"),
    ]
    make = parts.scripted_reviewer(["curl"])
    assert callable(make()) and make() is not make()  # one responder per model served
