"""A LogAct log node: the pure state machine, its Raft replication and its network service.

In-process logs with the same API as a cluster: ``open_memory()`` (nothing kept) and
``open_embedded(data_dir)`` (a single durable node); ``logact serve`` runs a cluster node.
"""

from logact.server.local import LocalLog, open_embedded, open_memory

__all__ = ["LocalLog", "open_embedded", "open_memory"]
