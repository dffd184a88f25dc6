"""The Raft backend: the log state machine replicated by PySyncObj 0.3.17.

How PySyncObj is used (see docs/durability.md); every change to PySyncObj itself is made in
``server/pysyncobj_adapter.py``:
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
- a commit reaches followers with the next entries or heartbeat, not in a message of its own,
  and the transport's upkeep runs every ``UPKEEP_PERIOD``, not after every message (issue 18:
  both cost CPU on every append and changed nothing);
- results come back through PySyncObj callbacks, bounced onto the trio loop, with a timeout.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from pysyncobj import FAIL_REASON, SyncObjConf

from logact.protocol.errors import LogError, NotLeader, Overloaded, Timeout, Unavailable
from logact.server import pysyncobj_adapter
from logact.server.command_types import Command, Reply
from logact.server.config import ClusterConfig, NodeConfig, RaftTuning
from logact.server.journal import FsyncJournal
from logact.server.peer_transport import MAX_MESSAGE
from logact.server.pysyncobj_adapter import LogSyncObj, PeerNode
from logact.server.replicated_form import replicated_batch
from logact.server.state import LogState

PEER_SOCKET_BUFFER = 4 * 1024 * 1024

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

        pysyncobj_adapter.use_journal_factory(make_journal)
        pysyncobj_adapter.install()
        tuning = config.raft
        conf = SyncObjConf(
            password=config.password,
            journalFile=str(data_dir / "raft.journal"),
            fullDumpFile=str(data_dir / "raft.snapshot"),
            appendEntriesUseBatch=False,
            # Larger than any group-committed batch (committer caps them at 8 MiB + one
            # command), so PySyncObj never takes its chunked 'transmission' path for an entry,
            # whose end-of-stream test compares against the wrong length.
            appendEntriesBatchSizeBytes=MAX_MESSAGE,
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
    async def replicate(self, cmds: list[Command]) -> list[Reply]:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        outcome: list[Any] = []

        def deliver(result: Any, error: int) -> None:
            outcome.append((result, error))
            done.set()

        def callback(result: Any, error: int) -> None:  # runs on PySyncObj's thread
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver, result, error)

        # Journaled and sent to followers in the replicated form (as older versions wrote).
        self.sync_obj.apply_batch(replicated_batch(cmds), callback=callback)
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
        self.sync_obj.set_listener(listener)

    def leader(self) -> NodeConfig | None:
        leader = self.sync_obj.leader()
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
            # AppendEntries rounds sent only to tell followers a commit index at once: while
            # they forward their clients' commands.
            "commit_rounds": self.sync_obj.commit_rounds,
            "journal_syncs": journal.syncs if journal else 0,
        }

    def close(self) -> None:
        self.sync_obj.destroy()
