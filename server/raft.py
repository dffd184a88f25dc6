"""The Raft backend: the log state machine replicated by PySyncObj 0.3.17.

How PySyncObj is used (see docs/durability.md):
- constructed on the trio thread (its tick thread dies with the constructing thread);
- our ``FsyncJournal`` replaces PySyncObj's journal, and we fsync it (group commit) at the start
  of every tick — before the leader counts itself towards a commit — and before a follower
  acknowledges appended entries, so an acknowledged append is on stable storage on a majority;
- snapshots are our own CBOR state, not a pickle of the whole object, written and fsync'd by a
  worker thread (server/snapshot_writer.py) so that Raft's tick thread never waits for them;
- on restart, loading the snapshot keeps the journal's entries after it when the journal holds
  the snapshot's last entry. PySyncObj clears the journal unless it was already compacted to
  that point, so a crash between writing a snapshot and compacting the journal lost every entry
  after the snapshot, acknowledged ones included;
- a follower no longer truncates entries that do not conflict with the leader's (PySyncObj drops
  everything after prevLogIdx on any append, even a stale duplicate; Raft forbids that);
- a follower commits only what the leader's message vouches for (never its own unverified
  suffix, never on a snapshot chunk), the commit index is volatile, and replies carry their
  term so a leader never counts an acknowledgement given to another term's log (issue 12,
  docs/durability.md, "Applying only committed entries");
- results come back through PySyncObj callbacks, bounced onto the trio loop, with a timeout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pysyncobj.syncobj as pysyncobj_module
import trio
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated
from pysyncobj.monotonic import monotonic as monotonicTime
from pysyncobj.node import TCPNode
from pysyncobj.serializer import SERIALIZER_STATE
from pysyncobj.tcp_server import SERVER_STATE
from pysyncobj.transport import TCPTransport

from logact.protocol.errors import LogError, NotLeader, Overloaded, Timeout, Unavailable
from logact.server import peer_transport, pysyncobj_pin  # noqa: F401  (checks the version)
from logact.server.config import ClusterConfig, NodeConfig, RaftTuning
from logact.server.journal import FsyncJournal
from logact.server.snapshot_writer import Progress, SnapshotWriter
from logact.server.state import LogState
from logact.server.storage import fsync_dir

log = logging.getLogger(__name__)
MAX_RAFT_MESSAGE = peer_transport.MAX_MESSAGE
#: Incoming Raft connections not yet identified as a peer: how long, and how many at once.
PEER_HELLO_TIMEOUT = 5.0
MAX_UNKNOWN_PEERS = 16
PEER_SOCKET_BUFFER = 4 * 1024 * 1024


def _replaced(*_: Any) -> None:
    raise RuntimeError("snapshots are written by LogSyncObj._start_snapshot")


_PROGRESS = {
    Progress.IDLE: SERIALIZER_STATE.NOT_SERIALIZING,
    Progress.WRITING: SERIALIZER_STATE.SERIALIZING,
    Progress.DONE: SERIALIZER_STATE.SUCCESS,
    Progress.FAILED: SERIALIZER_STATE.FAILED,
}

_FAILURES: dict[int, tuple[type[LogError], str]] = {
    FAIL_REASON.QUEUE_FULL: (Overloaded, "the Raft command queue is full"),
    FAIL_REASON.MISSING_LEADER: (Unavailable, "no Raft leader is known"),
    FAIL_REASON.DISCARDED: (Unavailable, "the command was discarded by a new leader"),
    FAIL_REASON.NOT_LEADER: (NotLeader, "the node lost leadership before committing"),
    FAIL_REASON.LEADER_CHANGED: (Timeout, "the leader changed; the outcome is unknown"),
    FAIL_REASON.REQUEST_DENIED: (Unavailable, "the leader denied the command"),
    FAIL_REASON.UNKNOWN_OUTCOME: (Timeout, "the outcome of the command is unknown"),
}


def syncobj_timing(tuning: RaftTuning) -> dict[str, Any]:
    """PySyncObj's timing and compaction options from the [raft] configuration table."""
    return {
        "appendEntriesPeriod": tuning.append_entries_period,
        "autoTickPeriod": tuning.auto_tick_period,
        "raftMinTimeout": tuning.raft_min_timeout,
        "raftMaxTimeout": tuning.raft_max_timeout,
        "leaderFallbackTimeout": tuning.leader_fallback_timeout,
        "connectionTimeout": tuning.connection_timeout,
        "logCompactionMinEntries": tuning.log_compaction_min_entries,
        "logCompactionMinTime": tuning.log_compaction_min_time,
        "commandsQueueSize": tuning.commands_queue_size,
    }


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
        if self._ready and self._server is not None and not self._server_bound():
            self._ready = False  # PySyncObj unbound it after an accept error: bind again
        now = time.monotonic()
        for conn, since in list(self._unknown_since.items()):
            if conn not in self._unknownConnections:
                del self._unknown_since[conn]
            elif now - since > PEER_HELLO_TIMEOUT:
                del self._unknown_since[conn]
                conn.disconnect()
        super()._onTick()

    def _server_bound(self) -> bool:
        return self._server._TcpServer__state == SERVER_STATE.BINDED  # type: ignore[union-attr]


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

    @replicated
    def apply_batch(self, cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            replies = self._state_holder[0].apply_batch(cmds)
        self._listener()
        return replies

    def journal_span(self) -> list[int]:
        """[first, last] Raft index held in the journal (read from any thread)."""
        journal = self._SyncObj__raftLog  # type: ignore[attr-defined]
        with contextlib.suppress(IndexError):
            return [journal[0][1], journal[-1][1]]
        return []

    # ---- snapshots (PySyncObj's serializer hooks) -----------------------------------------
    def _start_snapshot(self, data: Any, snapshot_id: int) -> None:
        """PySyncObj's ``Serializer.serialize``, replaced (``server/snapshot_writer.py``).

        Called on the tick thread with the state exactly at the snapshot's log index: the
        image is taken now, the file is written by a worker thread.
        """
        with self._lock:
            image = self.state.to_snapshot()
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
        state = LogState.from_snapshot(image)
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
        journal = self._SyncObj__raftLog  # type: ignore[attr-defined]
        offset = entry_before[1] - journal[0][1]
        if offset < 0 or offset + 1 >= len(journal):
            return None
        held_before, held_last = journal[offset], journal[offset + 1]
        if held_before[1:] == tuple(entry_before[1:]) and held_last[1:] == tuple(last_entry[1:]):
            return offset
        return None

    # ---- durability hooks (PySyncObj private methods, pinned to 0.3.17) -------------------
    def _sync_journal(self) -> None:
        journal = self._journal_holder.get("journal")
        if journal is not None:
            journal.sync()

    def _onTick(self, timeToWait: float = 0.0) -> None:
        # Anything added since the last sync (e.g. the no-op of a new leader) becomes durable
        # before this tick's commit computation counts the leader itself.
        self._sync_journal()
        super()._onTick(timeToWait)

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
            mine = self._SyncObj__getEntries(idx, 1)  # type: ignore[attr-defined]
            if not mine or mine[0][1] != idx or mine[0][2] != entry_term:
                break
            present += 1
        if present:
            rewritten["prevLogIdx"], rewritten["prevLogTerm"] = entries[present - 1][1:]
            rewritten["entries"] = entries[present:]
        self._keep_suffix = present == len(entries)
        return rewritten


class RaftBackend:
    def __init__(self, config: ClusterConfig, node: NodeConfig, data_dir: Path) -> None:
        self.config = config
        self.node = node
        self.durability = config.durability
        self.max_inflight = 2
        self.lock = threading.Lock()
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._timeout = config.server.request_timeout
        self._by_raft = {n.raft_address: n for n in config.nodes}
        self._journal_holder: dict[str, FsyncJournal] = {}
        sync = config.durability == "fsync"

        def make_journal(path: str | None) -> FsyncJournal:
            journal = FsyncJournal(path, sync=sync)  # type: ignore[arg-type]
            self._journal_holder["journal"] = journal
            return journal

        # PySyncObj builds its journal through this module-level factory.
        pysyncobj_module.createJournal = make_journal
        peer_transport.install()
        tuning = config.raft
        conf = SyncObjConf(
            password=config.password,
            journalFile=str(data_dir / "raft.journal"),
            fullDumpFile=str(data_dir / "raft.snapshot"),
            appendEntriesUseBatch=False,
            # Larger than any group-committed batch (committer caps them at 8 MiB + one
            # command), so PySyncObj never takes its chunked 'transmission' path for an entry,
            # whose end-of-stream test compares against the wrong length.
            appendEntriesBatchSizeBytes=MAX_RAFT_MESSAGE,
            connectionRetryTime=0.5,
            **syncobj_timing(tuning),
            sendBufferSize=PEER_SOCKET_BUFFER,
            recvBufferSize=PEER_SOCKET_BUFFER,
            bindAddress=node.raft_address,
            dynamicMembershipChange=False,
        )
        partners = [
            PeerNode(n.raft_address, node.raft_dial.get(n.id, n.raft_address))
            for n in config.nodes
            if n.id != node.id
        ]
        self.sync_obj = LogSyncObj(
            node.raft_address,
            partners,
            conf,
            LogState(),
            self.lock,
            self._journal_holder,
            durable=sync,
        )

    @property
    def state(self) -> LogState:
        return self.sync_obj.state

    # ---- replication ----------------------------------------------------------------------
    async def replicate(self, cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        outcome: list[Any] = []

        def deliver(result: Any, error: int) -> None:
            outcome.append((result, error))
            done.set()

        def callback(result: Any, error: int) -> None:  # runs on PySyncObj's thread
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver, result, error)

        self.sync_obj.apply_batch(cmds, callback=callback)
        with trio.move_on_after(self._timeout):
            await done.wait()
        if not outcome:
            raise Timeout(f"no Raft outcome within {self._timeout:.1f}s; it may have applied")
        result, error = outcome[0]
        if error != FAIL_REASON.SUCCESS:
            cls, message = _FAILURES.get(error, (Unavailable, f"Raft failure {error}"))
            raise cls(message)
        return result

    def set_listener(self, listener: Callable[[], None]) -> None:
        self.sync_obj._listener = listener

    def leader(self) -> NodeConfig | None:
        leader = self.sync_obj._getLeader()
        if leader is None:
            return None
        return self._by_raft.get(getattr(leader, "id", str(leader)))

    def describe(self) -> dict[str, Any]:
        for _ in range(5):
            try:
                raw = self.sync_obj.getStatus()
                break
            except RuntimeError:  # a dict changed size on the tick thread; read again
                continue
        else:
            raw = {}
        leader = self.leader()
        state = raw.get("state")
        journal = self._journal_holder.get("journal")
        return {
            "mode": "raft",
            "id": self.node.id,
            "client": self.node.client_address,
            "role": {0: "follower", 1: "candidate", 2: "leader"}.get(state, "unknown"),
            "leader": leader.id if leader else None,
            "leader_client": leader.client_address if leader else None,
            "term": raw.get("raft_term"),
            "commit_index": raw.get("commit_idx"),
            "last_applied": raw.get("last_applied"),
            "log_len": raw.get("log_len"),
            "journal": self.sync_obj.journal_span(),
            "snapshots": {
                "written": self.sync_obj.snapshots_written,
                "installed": self.sync_obj.snapshots_installed,
                "ignored": self.sync_obj.snapshots_ignored,
            },
            "has_quorum": raw.get("has_quorum"),
            "journal_syncs": journal.syncs if journal else 0,
        }

    def close(self) -> None:
        self.sync_obj.destroy()
