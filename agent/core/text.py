"""Text cut to fit a line of a report, a prompt or a vote: one line, at most so many characters."""

from __future__ import annotations


def oneline(text: str) -> str:
    """Whitespace runs (newlines too) as single spaces: a summary line cannot fake structure."""
    return " ".join(text.split())


def shorten(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def clip(text: str, width: int = 90) -> str:
    """``text`` on one line of at most ``width`` characters."""
    return shorten(oneline(text), width)
