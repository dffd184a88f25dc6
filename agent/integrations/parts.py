"""An agent's parts from plain settings, as a command line or a config file gives them: the
executor's tools (in one workspace, or in a directory of its own for each bus a watch serves),
the rule voter's rules, a scripted reviewer's verdicts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from logact.agent.judgement import llm_voter
from logact.agent.judgement.rules import RuleSet, load_rules
from logact.agent.models.llm import Responder
from logact.agent.tools.registry import ToolRegistry, standard_tools
from logact.agent.tools.sandbox import unavailable as sandbox_unavailable
from logact.protocol.codec import BUS_ID

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


#: The longest directory name most file systems take (bytes; bus ids are ASCII).
_NAME_MAX = 255


def bus_workspace(root: Path, bus: str) -> Path:
    """The directory of ``bus``'s actions under ``root`` when one process serves many buses.

    One path component named after the bus, so no bus reaches another's files or leaves
    ``root``: a bus id (protocol ``BUS_ID``: letters, digits, ``. _ / -``) may hold ``/`` and
    be ``.`` or ``..``, so ``/`` is written ``%2F`` and a leading ``.`` ``%2E``. ``%`` is in no
    bus id, so distinct buses get distinct directories; a name too long for the file system is
    cut and ends in ``~`` and a digest of the id (``~`` is in no bus id either).
    """
    if not BUS_ID.fullmatch(bus):
        raise ValueError(f"not a bus id: {bus!r}")
    name = bus.replace("/", "%2F")
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > _NAME_MAX:
        digest = hashlib.sha256(bus.encode()).hexdigest()[:32]
        name = f"{name[: _NAME_MAX - len(digest) - 1]}~{digest}"
    return root / name


def bus_tools(root: Path, bus: str, *, sandboxed: bool = True, **options: Any) -> ToolRegistry:
    """:func:`executor_tools` in ``bus``'s own directory under ``root`` (:func:`bus_workspace`,
    created on first use); its warning is the root's, said once by whoever made the root's."""
    tools, _warning = executor_tools(bus_workspace(root, bus), sandboxed=sandboxed, **options)
    return tools


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
