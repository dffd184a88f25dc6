"""Every change LogAct makes to PySyncObj, in one module pinned to the release it was verified on.

PySyncObj is changed in three ways, all here:

- process-wide patches (``install``): the peer cipher and no compression (``peer_transport``),
  bounded reads, accept errors that keep the listener open, pickle protocol 5 for commands
  and messages (``PICKLE_PROTOCOL``); and the journal factory
  (``use_journal_factory``), so PySyncObj builds our ``FsyncJournal``;
- ``PeerNode`` and ``PeerTransport``: peers told apart by id, not dial address, and a listener
  that stays bound and drops idle strangers;
- ``LogSyncObj``: the ``SyncObj`` subclass that overrides its private methods for durability
  (group-committed fsync), snapshots written beside Raft (``snapshot_writer``), and Raft safety
  (see the top of ``server/raft.py`` and docs/durability.md).

All of it depends on internals a new release may rename or change: importing this module checks
the installed version, and ``tests/unit/test_pysyncobj_adapter.py`` checks that every private
name below still exists, that no other server module uses one, and that the upstream source of
every function patched, overridden or relied on is still the one these changes were written
against.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import logging
import os
import pickle
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pysyncobj.pickle as pysyncobj_pickle
import pysyncobj.syncobj as pysyncobj_syncobj
import pysyncobj.tcp_connection as pysyncobj_tcp
import pysyncobj.tcp_server as pysyncobj_server
from pysyncobj import SyncObj, SyncObjConf, replicated
from pysyncobj.monotonic import monotonic as monotonicTime
from pysyncobj.node import TCPNode
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.serializer import SERIALIZER_STATE
from pysyncobj.tcp_server import SERVER_STATE
from pysyncobj.transport import TCPTransport

from logact.server.command_types import Reply
from logact.server.heap import give_back_freed_memory
from logact.server.journal import FsyncJournal
from logact.server.peer_transport import (
    LENGTH,
    MAX_MESSAGE,
    NO_COMPRESSION,
    PREAUTH_MESSAGE,
    TRANSIENT_ACCEPT_ERRNOS,
    GcmEncryptor,
)
from logact.server.ratelog import RateLimitedLog
from logact.server.snapshot_writer import Progress, SnapshotWriter
from logact.server.state import LogState
from logact.server.storage import fsync_dir

log = logging.getLogger(__name__)

#: The release the patches and overrides were written and verified against (pyproject pins it).
PINNED = "0.3.17"

#: class (module path) -> the private names (mangled) this package reads, calls or replaces.
PRIVATE_NAMES: dict[str, tuple[str, ...]] = {
    "pysyncobj.syncobj.SyncObj": (
        "_SyncObj__applyLogEntries",
        "_SyncObj__deleteEntriesFrom",
        "_SyncObj__generateRaftTimeout",
        "_SyncObj__getCurrentLogIndex",
        "_SyncObj__getEntries",
        "_SyncObj__getPrevLogIndexTerm",
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
        "_TcpConnection__socket",
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
    ("pysyncobj.pickle", "__protocol"),
)
#: The pickle protocol of PySyncObj's commands and peer messages. Its own, 2, pickles a bytes
#: object as a latin-1 string, in UTF-8: an entry body of random bytes took 1.5 times its size
#: in every journaled command (held in memory too) and twice it in a message carrying one,
#: and every body was decoded and re-encoded on the way (issue 18). Protocol 5 writes bytes as
#: they are. Python reads every protocol, so the journals and nodes of older versions are read
#: as before.
PICKLE_PROTOCOL = 5


def check_version(installed: str | None = None) -> None:
    """Refuse to run the adapter on another PySyncObj release than the one it was verified on."""
    installed = installed or importlib.metadata.version("pysyncobj")
    if installed != PINNED:
        raise RuntimeError(
            f"LogAct's Raft adapter was verified against PySyncObj {PINNED}, but {installed} is "
            f"installed; its patches rely on that release's internals "
            f"(server/pysyncobj_adapter.py): install pysyncobj=={PINNED}"
        )


check_version()


# ---- process-wide patches ------------------------------------------------------------------
_events = RateLimitedLog(log)
#: Bytes one read of a peer socket takes at most: its receive buffer (``raft.PEER_SOCKET_BUFFER``).
PEER_READ = 4 * 1024 * 1024
#: Each tick thread's read buffer, allocated once (tests run several nodes in one process).
_read_buffers = threading.local()


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_read_buffers, "view", None)
    if view is None:
        view = _read_buffers.view = memoryview(bytearray(PEER_READ))
    return view


def _bounded_read(conn: Any) -> bool:
    """PySyncObj's one recv, except that an oversized first buffered message disconnects, a
    complete one is parsed before reading more, and the bytes land in a reused buffer.

    PySyncObj's ``recv(recvBufferSize)`` allocated 4 MiB per read, which glibc serves with
    mmap, mremap and munmap: three system calls, and page-table work on both cores, for each
    peer message (issue 18)."""
    buffer = conn._TcpConnection__readBuffer
    if len(buffer) >= LENGTH.size:
        (length,) = LENGTH.unpack_from(buffer)
        limit = MAX_MESSAGE if conn.recvLastTimestamp else PREAUTH_MESSAGE
        if not 0 <= length <= limit:
            conn.disconnect()
            return False
        if len(buffer) >= LENGTH.size + length:
            return False  # parse it before reading more: the socket holds the rest
    sock = conn._TcpConnection__socket
    view = _read_buffer()
    try:
        count = sock.recv_into(view)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
            conn.disconnect()
        return False
    if not count:
        conn.disconnect()  # the peer closed the connection
        return False
    conn._TcpConnection__readBuffer = buffer + view[:count]
    return True


def _accept(server: Any, descr: Any, event: Any) -> None:
    """PySyncObj's accept, except that running out of descriptors keeps the listener open.

    Any other accept error still unbinds, as in PySyncObj; ``PeerTransport`` then binds again.
    """
    if event & POLL_EVENT_TYPE.READ:
        try:
            sock, _ = server._TcpServer__socket.accept()
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno not in TRANSIENT_ACCEPT_ERRNOS:
                server.unbind()
                return
            _events.event("raft_accept_errors", f"accept failed ({exc.strerror}); kept open")
        else:
            _serve_accepted(server, sock)
    if event & POLL_EVENT_TYPE.ERROR:
        server.unbind()


def _serve_accepted(server: Any, sock: socket.socket) -> None:
    """Hand an accepted socket to PySyncObj as its own accept does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, server._TcpServer__sendBufferSize)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, server._TcpServer__recvBufferSize)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    conn = pysyncobj_tcp.TcpConnection(
        poller=server._TcpServer__poller,
        socket=sock,
        timeout=server._TcpServer__connectionTimeout,
        sendBufferSize=server._TcpServer__sendBufferSize,
        recvBufferSize=server._TcpServer__recvBufferSize,
        keepalive=server._TcpServer__keepalive,
    )
    server._TcpServer__onNewConnectionCallback(conn)


def install() -> None:
    """Patch the peer messaging of PySyncObj in this process (see ``peer_transport``), and
    the protocol it pickles commands and messages with (``PICKLE_PROTOCOL``); idempotent."""
    pysyncobj_pickle.__protocol = PICKLE_PROTOCOL  # type: ignore[attr-defined]
    pysyncobj_syncobj.getEncryptor = GcmEncryptor
    pysyncobj_tcp.zlib = NO_COMPRESSION
    pysyncobj_tcp.TcpConnection._TcpConnection__processRead = _bounded_read  # type: ignore[attr-defined]
    pysyncobj_server.TcpServer._TcpServer__onNewConnection = _accept  # type: ignore[attr-defined]


def use_journal_factory(factory: Callable[[str | None], Any]) -> None:
    """PySyncObj builds its journal through a module-level factory: the next ``SyncObj``
    constructed in this process gets its journal from ``factory``."""
    pysyncobj_syncobj.createJournal = factory


# ---- peers -----------------------------------------------------------------------------------
#: Incoming Raft connections not yet identified as a peer: how long, and how many at once.
PEER_HELLO_TIMEOUT = 5.0
#: How often the transport's upkeep (listener bound? peers to dial? strangers to drop?) runs.
#: PySyncObj ran it on every tick, i.e. after every message: a fifth of a follower's CPU.
UPKEEP_PERIOD = 0.01
MAX_UNKNOWN_PEERS = 16


class PeerNode(TCPNode):
    """A peer known by its Raft address (its id) but dialled at ``dial`` (e.g. a chaos proxy).

    PySyncObj 0.3.17 identifies nodes by address; the id is set after construction because its
    TCPNode takes the id from the address it dials.
    """

    def __init__(self, address: str, dial: str) -> None:
        super().__init__(dial)
        self._id = address


class PeerTransport(TCPTransport):
    """TCPTransport that tells peers apart by id, so dial addresses may differ from ids.

    It also keeps its listener alive (PySyncObj never binds again once it unbound), and closes
    incoming connections that have not identified as a peer within ``PEER_HELLO_TIMEOUT`` (the
    oldest first beyond ``MAX_UNKNOWN_PEERS`` at once): idle strangers must not use up
    descriptors.
    """

    _ready: bool  # TCPTransport's own flag: the listener is bound

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._unknown_since: dict[Any, float] = {}
        self._next_upkeep = 0.0
        super().__init__(*args, **kwargs)

    def addNode(self, node: TCPNode) -> None:
        # A dialling peer announces its own address, which is its id here.
        self._nodeAddrToNode[node.id] = node
        super().addNode(node)

    def _shouldConnect(self, node: Any) -> bool:
        # Both ends must agree on who dials: compare ids, not (possibly proxied) addresses.
        return (
            isinstance(node, TCPNode)
            and node not in self._preventConnectNodes
            and (self._selfIsReadonlyNode or self._selfNode.id > node.id)
        )

    def _onNewIncomingConnection(self, conn: Any) -> None:
        super()._onNewIncomingConnection(conn)
        known = [c for c in self._unknown_since if c not in self._unknownConnections]
        for identified in known:
            del self._unknown_since[identified]
        self._unknown_since[conn] = time.monotonic()
        # Over the cap the oldest stranger goes: a real peer identifies within milliseconds.
        while len(self._unknown_since) > MAX_UNKNOWN_PEERS:
            oldest = next(iter(self._unknown_since))
            del self._unknown_since[oldest]
            oldest.disconnect()

    def _onTick(self) -> None:
        now = time.monotonic()
        if now < self._next_upkeep:
            return
        self._next_upkeep = now + UPKEEP_PERIOD
        if self._ready and self._server is not None and not self._server_bound():
            self._ready = False  # PySyncObj unbound it after an accept error: bind again
        for conn, since in list(self._unknown_since.items()):
            if conn not in self._unknownConnections:
                del self._unknown_since[conn]
            elif now - since > PEER_HELLO_TIMEOUT:
                del self._unknown_since[conn]
                conn.disconnect()
        super()._onTick()

    def _server_bound(self) -> bool:
        return self._server._TcpServer__state == SERVER_STATE.BINDED  # type: ignore[union-attr]


# ---- the replicated object -------------------------------------------------------------------
def _replaced(*_: Any) -> None:
    raise RuntimeError("snapshots are written by LogSyncObj._start_snapshot")


#: How long after a follower last forwarded a command the leader keeps sending each new
#: commit index at once (``LogSyncObj._SyncObj__applyLogEntries``).
FORWARDING_WINDOW = 1.0

_PROGRESS = {
    Progress.IDLE: SERIALIZER_STATE.NOT_SERIALIZING,
    Progress.WRITING: SERIALIZER_STATE.SERIALIZING,
    Progress.DONE: SERIALIZER_STATE.SUCCESS,
    Progress.FAILED: SERIALIZER_STATE.FAILED,
}


class LogSyncObj(SyncObj):
    """SyncObj carrying a LogState, with durable journal and snapshot hooks."""

    def __init__(
        self,
        self_address: str,
        partners: list[TCPNode],
        conf: SyncObjConf,
        state: LogState,
        lock: threading.Lock,
        journal_holder: dict[str, FsyncJournal],
        *,
        durable: bool = True,
    ) -> None:
        self._state_holder = [state]
        self._lock = lock
        self._durable = durable
        self._listener: Callable[[], None] = lambda: None
        self._journal_holder = journal_holder
        self._keep_suffix = False
        #: The (success, next index) an install's reply reports; set while one is handled.
        self._install_reply: tuple[bool, int] | None = None
        self._parsed_snapshot: tuple[Any, tuple[Any, Any, Any]] | None = None
        self._loaded_snapshot: int | None = None
        self._snapshot_path = conf.fullDumpFile
        #: (leader, term) of the snapshot transmission being received, if any.
        self._incoming_snapshot: tuple[Any, int] | None = None
        #: For status: snapshots this node wrote, and received from a leader and installed (or
        #: ignored: they held nothing beyond its commit index).
        self.snapshots_written = 0
        self.snapshots_installed = 0
        self.snapshots_ignored = 0
        #: Until then, every apply sends the followers the new commit index at once
        #: (``_SyncObj__applyLogEntries``); the rounds sent, for status.
        self._forwarding_until = 0.0
        self.commit_rounds = 0
        self._writer = SnapshotWriter(durable)
        if conf.fullDumpFile is not None:
            conf.useFork = False
            # PySyncObj wants both hooks; ``serialize`` itself is replaced below.
            conf.serializer = _replaced
            conf.deserializer = self._read_snapshot
            conf.serializeChecker = self._snapshot_progress
        super().__init__(self_address, partners, conf, transportClass=PeerTransport)
        if conf.fullDumpFile is not None:
            self._SyncObj__serializer.serialize = self._start_snapshot  # type: ignore[attr-defined]

    @property
    def state(self) -> LogState:
        return self._state_holder[0]

    def set_listener(self, listener: Callable[[], None]) -> None:
        """``listener`` is called on the tick thread after every applied batch."""
        self._listener = listener

    def leader(self) -> Any:
        """The node this one believes leads, or None."""
        return self._getLeader()

    @replicated
    def apply_batch(self, cmds: list[dict[str, Any]]) -> list[Reply]:
        """Apply a batch in its replicated form (from this leader, the journal or a peer)."""
        with self._lock:
            replies = self._state_holder[0].apply_replicated_batch(cmds)
        self._listener()
        return replies

    def journal_span(self) -> list[int]:
        """[first, last] Raft index held in the journal (read from any thread)."""
        journal = self._SyncObj__raftLog  # type: ignore[attr-defined]
        with contextlib.suppress(IndexError):
            if isinstance(journal, FsyncJournal):
                return journal.span()  # never a command: that may mean reading the file
            return [journal[0][1], journal[-1][1]]
        return []

    # ---- snapshots (PySyncObj's serializer hooks) -----------------------------------------
    def _start_snapshot(self, data: Any, snapshot_id: int) -> None:
        """PySyncObj's ``Serializer.serialize``, replaced (``server/snapshot_writer.py``).

        Called on the tick thread with the state exactly at the snapshot's log index: the
        image is taken now, the file is written by a worker thread.
        """
        with self._lock:
            image = self.state.to_snapshot(lazy=True)
        serializer = self._SyncObj__serializer  # type: ignore[attr-defined]
        serializer._Serializer__currentID = snapshot_id
        document = {"state": image, "raft": pickle.dumps(data[1:])}
        self._writer.start(self._snapshot_path, document)

    def _snapshot_progress(self) -> int:
        """PySyncObj's ``serializeChecker``: where the snapshot being written stands."""
        progress = self._writer.progress()
        if progress is Progress.DONE:
            self.snapshots_written += 1
            # Transmissions still reading the previous file start again from this one.
            self._SyncObj__serializer._Serializer__transmissions = {}  # type: ignore[attr-defined]
        return _PROGRESS[progress]

    def _parse_snapshot(self, path: str) -> tuple[Any, tuple[Any, Any, Any]]:
        """(state image, (last entry, entry before it, cluster)) of a snapshot file."""
        with open(path, "rb") as handle:
            raw = handle.read()
            if self._durable:
                # A snapshot received from the leader may replace this node's journal right
                # after this: it must be on stable storage first.
                os.fsync(handle.fileno())
        if self._durable:
            fsync_dir(Path(path).parent)
        data = cbor2.loads(raw)
        # Written by our own node or a password-authenticated peer.
        last_entry, entry_before, cluster = pickle.loads(data["raft"])
        return data["state"], (last_entry, entry_before, cluster)

    def _read_snapshot(self, path: str) -> Any:
        """PySyncObj's deserializer hook: replace the state, return the snapshot's Raft meta."""
        parsed, self._parsed_snapshot = self._parsed_snapshot, None
        image, (last_entry, entry_before, cluster) = parsed or self._parse_snapshot(path)
        del parsed
        state = LogState.from_snapshot(image)
        del image  # the decoded document, freed before its memory is given back
        give_back_freed_memory()
        with self._lock:
            self._state_holder[0] = state
        offset = self._snapshot_offset(entry_before, last_entry)
        if offset:
            # PySyncObj keeps the journal only if it starts exactly at the snapshot.
            self._SyncObj__raftLog.deleteEntriesTo(offset)  # type: ignore[attr-defined]
        self._loaded_snapshot = last_entry[1]
        return last_entry, entry_before, cluster

    def _snapshot_offset(self, entry_before: Any, last_entry: Any) -> int | None:
        """Where the journal holds the snapshot's last two entries (same index and term)."""
        before, last = entry_before[1], last_entry[1]
        if self._term_of(before) != entry_before[2] or self._term_of(last) != last_entry[2]:
            return None
        return before - self._SyncObj__raftLog[0][1]  # type: ignore[attr-defined,no-any-return]

    def _term_of(self, idx: int) -> int | None:
        """The term of the journal's entry ``idx``, None if it holds none; read without the
        entry's command, which ``FsyncJournal`` may keep on disk only."""
        journal = self._SyncObj__raftLog  # type: ignore[attr-defined]
        if isinstance(journal, FsyncJournal):
            return journal.term_of(idx)
        held = self._SyncObj__getEntries(idx, 1)  # type: ignore[attr-defined]
        return held[0][2] if held else None  # PySyncObj's own journals (tests without files)

    # ---- durability hooks (PySyncObj private methods, pinned to 0.3.17) -------------------
    def _sync_journal(self) -> None:
        journal = self._journal_holder.get("journal")
        if journal is not None:
            journal.sync()

    def _onTick(self, timeToWait: float = 0.0) -> None:
        # Anything added since the last sync (e.g. the no-op of a new leader) becomes durable
        # before this tick's commit computation counts the leader itself.
        self._sync_journal()
        if self._SyncObj__transport.ready:  # type: ignore[attr-defined]
            # New commands go to the followers first: PySyncObj took them last, after
            # applying what the tick committed and after any heartbeat, so followers started
            # on a batch only once the leader had applied the one before (issue 18).
            self._checkCommandsToApply()
        super()._onTick(timeToWait)
        journal = self._SyncObj__raftLog  # type: ignore[attr-defined]
        if isinstance(journal, FsyncJournal):
            journal.release(self._last_applied)  # applied commands are in the state now

    def _SyncObj__applyLogEntries(self) -> bool:
        """PySyncObj's, but applying asks for a round of AppendEntries of its own only while
        followers forward commands.

        With appendEntriesUseBatch=False it asked after every apply, so a leader sent each
        follower one more message, and got one more reply, per commit just to move the commit
        index: half of all peer messages of sequential appends (issue 18). Followers learn it
        from the next entries or heartbeat (``append_entries_period``) instead, as in etcd —
        except that a follower answers a command it forwarded only once it has applied it:
        without the round, each append of a client connected to a follower waited for a
        heartbeat (14.6 against 2.2 ms on the leader, sequentially).
        """
        applied = self._last_applied
        SyncObj._SyncObj__applyLogEntries(self)  # type: ignore[attr-defined]
        if self._last_applied == applied or monotonicTime() > self._forwarding_until:
            return False
        self.commit_rounds += 1
        return True

    def _checkCommandsToApply(self) -> None:
        # The leader has just appended new commands and (appendEntriesUseBatch=False) sent
        # them to followers: sync now, overlapping our fsync with theirs.
        super()._checkCommandsToApply()
        self._sync_journal()

    # ---- Raft safety (PySyncObj private methods, pinned to 0.3.17) ------------------------
    @property
    def _raft_term(self) -> int:
        return self._SyncObj__raftCurrentTerm  # type: ignore[attr-defined,no-any-return]

    @property
    def _last_applied(self) -> int:
        return self._SyncObj__raftLastApplied  # type: ignore[attr-defined,no-any-return]

    @property
    def _commit_index(self) -> int:
        return self._SyncObj__raftCommitIndex  # type: ignore[attr-defined,no-any-return]

    @_commit_index.setter
    def _commit_index(self, value: int) -> None:
        self._SyncObj__raftCommitIndex = value

    # PySyncObj's follower raised its commit index to min(leaderCommit, end of its own log) on
    # every AppendEntries it accepted, snapshot chunks included, and its replies carried no
    # term. A healed old leader that received a snapshot chunk thus applied its own
    # uncommitted suffix (issue 12). Here a follower commits only indexes the message proves
    # it holds in the leader's form, and a leader counts only replies of its current term.

    def _SyncObj__sendNextNodeIdx(
        self, node: Any, reset: bool = False, nextNodeIdx: Any = None, success: bool = False
    ) -> None:
        self._sync_journal()  # a follower acknowledges only what is on stable storage
        if success and self._install_reply is not None:
            # PySyncObj acknowledges every install as its whole journal matching, even a
            # failed one; say only what the install proved (``_SyncObj__loadDumpFile``).
            success, nextNodeIdx = self._install_reply
            reset = not success
        if nextNodeIdx is None:
            nextNodeIdx = self._SyncObj__getCurrentLogIndex() + 1  # type: ignore[attr-defined]
        reply = {"type": "next_node_idx", "next_node_idx": nextNodeIdx, "reset": reset}
        reply |= {"success": success, "term": self._raft_term}
        self._SyncObj__transport.send(node, reply)  # type: ignore[attr-defined]

    def _SyncObj__getPrevLogIndexTerm(self, nextNodeIndex: int) -> tuple[Any, Any]:
        """PySyncObj's, reading only the term: a leader asks for every message it sends, and
        the entry's command may be on disk only (``FsyncJournal``)."""
        prev = nextNodeIndex - 1
        term = self._term_of(prev)
        return (prev, term) if term is not None else (None, None)

    def _SyncObj__deleteEntriesFrom(self, fromIDx: int) -> None:
        if self._keep_suffix:
            return
        SyncObj._SyncObj__deleteEntriesFrom(self, fromIDx)  # type: ignore[attr-defined]

    def _SyncObj__loadDumpFile(self, clearJournal: bool) -> None:
        """Load a snapshot: our own at restart, or one installed from the leader.

        An install follows Raft (Fig. 13), and etcd: a snapshot holding nothing beyond our
        commit index changes nothing (PySyncObj loaded it: the node went back in time and
        dropped entries it had acknowledged); if our journal holds the snapshot's last entry,
        the entries after it are kept, unverified. The reply then vouches only for what the
        snapshot or our commit index proves (``_install_reply``).
        """
        installing = clearJournal
        self._loaded_snapshot = None
        if installing:
            self._install_reply = (False, self._last_applied + 1)  # ask again from there
            try:
                self._parsed_snapshot = self._parse_snapshot(self._snapshot_path)
            except Exception:
                log.exception("a snapshot received from the leader cannot be read")
                return
            last_entry, entry_before, _ = self._parsed_snapshot[1]
            if last_entry[1] <= self._commit_index:
                log.info(
                    "ignored a snapshot up to %d from the leader: already committed up to %d",
                    last_entry[1],
                    self._commit_index,
                )
                self._parsed_snapshot = None
                self.snapshots_ignored += 1
                self._install_reply = (True, self._commit_index + 1)
                return
            clearJournal = self._snapshot_offset(entry_before, last_entry) is None
        SyncObj._SyncObj__loadDumpFile(self, clearJournal)  # type: ignore[attr-defined]
        self._parsed_snapshot = None
        loaded = self._loaded_snapshot
        if loaded is None or loaded != self._last_applied:
            return  # PySyncObj logged why
        self._commit_index = max(self._commit_index, loaded)
        if installing:
            self.snapshots_installed += 1
            self._install_reply = (True, loaded + 1)
            # Loading a large snapshot takes a while: it is no sign that the leader is gone.
            timeout = self._SyncObj__generateRaftTimeout()  # type: ignore[attr-defined]
            self._SyncObj__raftElectionDeadline = monotonicTime() + timeout

    def _SyncObj__onMessageReceived(self, node: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "apply_command":  # a follower forwards a command its client sent it
            self._forwarding_until = monotonicTime() + FORWARDING_WINDOW
        term = self._raft_term
        if kind == "next_node_idx" and message.get("term") != term:
            return  # a reply to a message of another term: it says nothing about our log
        self._keep_suffix = False
        self._install_reply = None
        if kind == "append_entries" and message.get("term", -1) >= term:
            message = self._vouched_only(self._one_transmission(node, message))
        if kind == "next_node_idx" and message.get("reset"):
            # The follower asks for another starting point: a snapshot it was being sent is
            # abandoned, and must start again from its first chunk if it is still needed.
            self._SyncObj__serializer.cancelTransmisstion(node)  # type: ignore[attr-defined]
        pipelined = None
        if kind == "next_node_idx" and message.get("success") and not message.get("reset"):
            pipelined = self._SyncObj__raftNextIndex.get(node)  # type: ignore[attr-defined]
        try:
            SyncObj._SyncObj__onMessageReceived(self, node, message)  # type: ignore[attr-defined]
        finally:
            self._keep_suffix = False
            self._install_reply = None
        if pipelined is not None:
            # PySyncObj moves nextIndex back to the acknowledged position on every success,
            # so everything already in flight is sent again (a third of all entries under
            # load). Only a 'reset' (a follower reporting a mismatch) may move it back.
            next_index = self._SyncObj__raftNextIndex  # type: ignore[attr-defined]
            if node in next_index and next_index[node] < pipelined:
                next_index[node] = pipelined

    def _one_transmission(self, node: Any, message: dict[str, Any]) -> dict[str, Any]:
        """A snapshot is assembled only from the chunks of one transmission.

        PySyncObj's leader keeps a node's transmission open when it goes back to plain
        AppendEntries, and later resumes it mid-file; the follower kept its partial file, so
        the two halves made a snapshot older than what it had since applied. Here a first
        chunk starts a transmission (this leader, this term), a later chunk of any other is
        dropped, and any plain AppendEntries abandons a partial one.
        """
        chunk = message.get("serialized")
        if chunk is None:
            if "prevLogIdx" in message:
                self._abort_incoming_snapshot()
            return message
        origin = (node, message["term"])
        if chunk[1]:  # the first chunk
            self._incoming_snapshot = origin
            return message
        if self._incoming_snapshot != origin:
            self._abort_incoming_snapshot()
            return {**message, "serialized": None}
        return message

    def _abort_incoming_snapshot(self) -> None:
        self._incoming_snapshot = None
        serializer = self._SyncObj__serializer  # type: ignore[attr-defined]
        partial = serializer._Serializer__incomingTransmissionFile
        if partial is not None:
            partial.close()
            serializer._Serializer__incomingTransmissionFile = None

    def _SyncObj__onBecomeLeader(self) -> None:
        # Transmissions a previous term of ours left open must not be resumed mid-file.
        for node in self._SyncObj__otherNodes:  # type: ignore[attr-defined]
            self._SyncObj__serializer.cancelTransmisstion(node)  # type: ignore[attr-defined]
        SyncObj._SyncObj__onBecomeLeader(self)  # type: ignore[attr-defined]

    def _vouched_only(self, message: dict[str, Any]) -> dict[str, Any]:
        """An AppendEntries rewritten so that it commits only what it vouches for (Raft §5.3).

        - Entries we already hold with the same term are skipped; only a conflicting entry
          (same index, other term) truncates our log, so a heartbeat or a message of old
          entries keeps our longer suffix — which stays unverified.
        - The commit index rises to at most the last index the message carries (prevLogIdx
          for a heartbeat): PySyncObj checks prevLogIdx/prevLogTerm before committing, so
          everything up to there then matches the leader's log.
        - A snapshot chunk commits nothing; an installed snapshot commits its own last index
          (``_SyncObj__loadDumpFile``).
        """
        prev = message.get("prevLogIdx")
        entries = message.get("entries") or []
        if prev is None:  # a snapshot chunk, or the leader has nothing before our log
            vouched = self._commit_index
        elif "transmission" in message:  # one large entry in chunks; only 'finish' carries it
            vouched = prev + (message["transmission"] == "finish")
        else:
            vouched = entries[-1][1] if entries else prev
        rewritten = {**message, "commit_index": min(message["commit_index"], vouched)}
        if prev is None or "transmission" in message:
            return rewritten
        present = 0
        for _command, idx, entry_term in entries:
            if self._term_of(idx) != entry_term:
                break
            present += 1
        if present:
            rewritten["prevLogIdx"], rewritten["prevLogTerm"] = entries[present - 1][1:]
            rewritten["entries"] = entries[present:]
        self._keep_suffix = present == len(entries)
        return rewritten
