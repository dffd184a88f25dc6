"""The network client of a LogAct cluster, and the log API it shares with the in-process logs.

``from logact.client import Client`` is all an agent needs; the errors it raises are in
``logact.protocol.errors``.
"""

from logact.client.blocking import BlockingClient
from logact.client.client import Client
from logact.protocol.api import BusInfo, LogAPI, ReadResult, Tail
from logact.protocol.codec import Entry

__all__ = ["BlockingClient", "BusInfo", "Client", "Entry", "LogAPI", "ReadResult", "Tail"]
