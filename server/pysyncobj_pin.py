"""The one PySyncObj release our adapter is written against, and every private name of it we use.

PySyncObj is changed here in two ways: process-wide patches (``peer_transport.install``: the
peer encryptor, compression, bounded reads, accept errors; ``raft.RaftBackend``: the journal
factory) and a subclass overriding private methods (``raft.LogSyncObj``). Both depend on
internals that a new release may rename or change, so importing the adapter checks the
installed version, and ``tests/unit/test_pysyncobj_pin.py`` checks that every name below still
exists and that every mangled name the server's source uses is listed here.
"""

from __future__ import annotations

import importlib.metadata

#: The release the patches and overrides were written and verified against (pyproject pins it).
PINNED = "0.3.17"

#: class (module path) -> the private names (mangled) this package reads, calls or replaces.
PRIVATE_NAMES: dict[str, tuple[str, ...]] = {
    "pysyncobj.syncobj.SyncObj": (
        "_SyncObj__deleteEntriesFrom",
        "_SyncObj__generateRaftTimeout",
        "_SyncObj__getCurrentLogIndex",
        "_SyncObj__getEntries",
        "_SyncObj__loadDumpFile",
        "_SyncObj__onBecomeLeader",
        "_SyncObj__onMessageReceived",
        "_SyncObj__otherNodes",
        "_SyncObj__raftCommitIndex",
        "_SyncObj__raftCurrentTerm",
        "_SyncObj__raftElectionDeadline",
        "_SyncObj__raftLastApplied",
        "_SyncObj__raftLog",
        "_SyncObj__raftNextIndex",
        "_SyncObj__sendNextNodeIdx",
        "_SyncObj__serializer",
        "_SyncObj__transport",
    ),
    "pysyncobj.serializer.Serializer": (
        "_Serializer__currentID",
        "_Serializer__incomingTransmissionFile",
        "_Serializer__transmissions",
    ),
    "pysyncobj.tcp_connection.TcpConnection": (
        "_TcpConnection__processRead",
        "_TcpConnection__readBuffer",
    ),
    "pysyncobj.tcp_server.TcpServer": (
        "_TcpServer__connectionTimeout",
        "_TcpServer__keepalive",
        "_TcpServer__onNewConnection",
        "_TcpServer__onNewConnectionCallback",
        "_TcpServer__poller",
        "_TcpServer__recvBufferSize",
        "_TcpServer__sendBufferSize",
        "_TcpServer__socket",
        "_TcpServer__state",
    ),
}
#: Module-level names replaced process-wide: (module, name).
REPLACED_GLOBALS = (
    ("pysyncobj.syncobj", "getEncryptor"),
    ("pysyncobj.syncobj", "createJournal"),
    ("pysyncobj.tcp_connection", "zlib"),
)


def check_version(installed: str | None = None) -> None:
    """Refuse to run the adapter on another PySyncObj release than the one it was verified on."""
    installed = installed or importlib.metadata.version("pysyncobj")
    if installed != PINNED:
        raise RuntimeError(
            f"LogAct's Raft adapter was verified against PySyncObj {PINNED}, but {installed} is "
            f"installed; its patches rely on that release's internals "
            f"(server/pysyncobj_pin.py): install pysyncobj=={PINNED}"
        )


check_version()
