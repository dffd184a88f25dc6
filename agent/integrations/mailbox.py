"""Mail between agents and from people: a mail entry on the recipient's bus.

Mail wakes an idle driver (it starts a new loop) or is buffered into the busy driver's next
model call (agent/components/conversation.py).
"""

from __future__ import annotations

from logact.agent.core import entries as e
from logact.protocol.api import LogAPI


async def send_mail(
    log: LogAPI, to: str, sender: str, text: str, *, subject: str | None = None
) -> int:
    """Append mail to bus ``to``; returns its position. The log records the true author too."""
    return await log.append(to, *e.Mail(sender, to, text, subject).to_entry())


async def give_task(log: LogAPI, bus: str, text: str) -> int:
    """Start (or queue) a task for the agent of ``bus``."""
    return await log.append(bus, *e.AgentInput(text).to_entry())
