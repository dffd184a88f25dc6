"""An agent's parts from plain settings, as a command line or a config file gives them: the
executor's tools, the rule voter's rules, a scripted reviewer's verdicts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from logact.agent.judgement import llm_voter
from logact.agent.judgement.rules import RuleSet, load_rules
from logact.agent.models.llm import Responder
from logact.agent.tools.registry import ToolRegistry, standard_tools
from logact.agent.tools.sandbox import unavailable as sandbox_unavailable

#: The rules of a rule voter given none: it approves everything (other voters may still veto).
ALLOW_ALL = RuleSet.from_doc({"default": "allow", "rules": []})


def executor_tools(
    workspace: Path, *, sandboxed: bool = True, **options: Any
) -> tuple[ToolRegistry, str | None]:
    """The built-in tools in ``workspace`` (created if missing), sandboxed unless told
    otherwise, and a warning for the operator: running unsandboxed, or a sandbox that cannot be
    set up here (found now, not at the first shell action, which will be refused with the
    reason)."""
    workspace.mkdir(parents=True, exist_ok=True)
    if not sandboxed:
        unsandboxed = "actions run WITHOUT a sandbox, as asked"
        return standard_tools(workspace, sandbox=None, **options), unsandboxed
    problem = sandbox_unavailable()
    warning = f"shell actions will be refused: {problem}" if problem is not None else None
    return standard_tools(workspace, **options), warning


def rules_or_allow_all(path: str | None) -> RuleSet:
    """The rule file at ``path`` (OSError / RuleError if unusable); no path: :data:`ALLOW_ALL`."""
    return ALLOW_ALL if path is None else load_rules(path)


def deny_pairs(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``TEXT=REASON`` specs as (text, reason) pairs; a spec without a reason gets one."""
    pairs = []
    for spec in specs:
        text, _, reason = spec.partition("=")
        pairs.append((text, reason or f"mentions {text!r}"))
    return pairs


def scripted_reviewer(specs: Sequence[str]) -> Callable[[], Responder]:
    """A scripted LLM voter that rejects actions mentioning a spec's TEXT (:func:`deny_pairs`),
    labelled scripted; made anew for each model it serves."""
    pairs = deny_pairs(specs)
    return lambda: llm_voter.keyword_responder(pairs)
