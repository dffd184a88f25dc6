"""The snapshot writer: piecewise encoding equals cbor2's, and the file lands whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from logact.server.snapshot_writer import CHUNK_ITEMS, Progress, SnapshotWriter, encode_pieces
from logact.server.state import LogState

leaves = st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.text(max_size=5)
documents = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=CHUNK_ITEMS * 2 + 3)
        | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=400,
)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_pieces_join_to_what_cbor2_encodes(document: Any) -> None:
    assert b"".join(encode_pieces({"state": document, "raft": b"m"})) == cbor2.dumps(
        {"state": document, "raft": b"m"}
    )


def state_image() -> dict[str, Any]:
    state = LogState()
    for i in range(1000):
        cmd = {"op": "append", "bus": f"b{i % 3}", "entries": [("t", cbor2.dumps({"i": i}), 9)]}
        state.apply_replicated({**cmd, "author": "a", "ts": i, "key": ("c", i)})
    return state.to_snapshot()


def test_a_state_image_is_encoded_in_short_pieces() -> None:
    document = {"state": state_image(), "raft": b"meta"}
    pieces = list(encode_pieces(document))
    assert b"".join(pieces) == cbor2.dumps(document)
    assert len(pieces) > 30 and max(len(p) for p in pieces) < 64 * 1024


def test_the_writer_reports_once_and_leaves_a_whole_file(tmp_path: Path) -> None:
    writer = SnapshotWriter(durable=True)
    assert writer.progress() is Progress.IDLE
    document = {"state": state_image(), "raft": b"meta"}
    writer.start(str(tmp_path / "raft.snapshot"), document)
    writer.join(30)
    assert writer.progress() is Progress.DONE
    assert writer.progress() is Progress.IDLE
    assert cbor2.loads((tmp_path / "raft.snapshot").read_bytes()) == cbor2.loads(
        cbor2.dumps(document)
    )
    assert not list(tmp_path.glob("*.writing"))


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "raft.snapshot"
    target.write_bytes(b"old")
    writer = SnapshotWriter(durable=False)
    writer.start(str(target), {"state": object(), "raft": b""})  # cannot be encoded
    writer.join(30)
    assert writer.progress() is Progress.FAILED
    assert target.read_bytes() == b"old"
