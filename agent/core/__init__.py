"""The vocabulary of a bus (its entry types), the decider policies that say which votes and
decisions count, and the fold that reads a bus into state (``replay`` reads it from a log)."""

from logact.agent.core.bus import BusState, IntentRecord
from logact.agent.core.entries import (
    Abort,
    AgentEntry,
    AgentInput,
    AgentOutput,
    CodeBlock,
    Commit,
    EntryError,
    ExecStart,
    Intent,
    Mail,
    Result,
    ToolCall,
    Vote,
    parse,
)

__all__ = [
    "Abort",
    "AgentEntry",
    "AgentInput",
    "AgentOutput",
    "BusState",
    "CodeBlock",
    "Commit",
    "EntryError",
    "ExecStart",
    "Intent",
    "IntentRecord",
    "Mail",
    "Result",
    "ToolCall",
    "Vote",
    "parse",
]
