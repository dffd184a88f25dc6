"""An agent's parts from plain settings (agent/integrations/parts.py): the operator hears about a
missing sandbox before the first action, rules default to allowing, deny specs parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from logact.agent.core import entries as e
from logact.agent.integrations import parts
from logact.agent.judgement.rules import RuleError


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
