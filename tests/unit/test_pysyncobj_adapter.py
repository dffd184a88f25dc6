"""Every change to PySyncObj is in the adapter, and PySyncObj is still what each was written for.

Each patch and override in ``server/pysyncobj_adapter.py`` is recorded below with the upstream
functions it replaces, wraps or relies on; each of those is pinned by its signature and by the
sha256 of its source as it was when the patch was verified. A new PySyncObj release that changes
one fails here and names the patches to re-verify (then record the new hash).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import re
from functools import cache
from pathlib import Path
from types import FunctionType

import pysyncobj.journal
import pysyncobj.node
import pysyncobj.pickle
import pysyncobj.syncobj
import pysyncobj.tcp_connection
import pysyncobj.transport
import pytest

from logact.server import peer_transport, pysyncobj_adapter
from logact.server.pysyncobj_adapter import LogSyncObj, PeerNode, PeerTransport

SERVER = Path(pysyncobj_adapter.__file__).parent
MANGLED = re.compile(r"\b_(?:SyncObj|Serializer|TcpConnection|TcpServer)__[A-Za-z]+")

#: Upstream function ("module:Class.method", as spelled in its source) -> (its parameters,
#: sha256 of its source) when the patches relying on it were verified against PySyncObj 0.3.17.
UPSTREAM: dict[str, tuple[str, str]] = {
    "encryptor:getEncryptor": (
        "password",
        "7fd3b1cc51db044ddcb4902b5ade4345cc40f64e9e867db8969f8325494e89a2",
    ),
    "journal:createJournal": (
        "journalFile=None",
        "7cb56b6af06590350d67c2bc89606d2d42356acedae29f8ff6ca8e0160871ad4",
    ),
    "node:Node.__init__": (
        "self, id, **kwargs",
        "82229a67bc66fd92e1ec3004e9b2cd0c111de8ca1514349440bef245b0f388b6",
    ),
    "node:TCPNode.__init__": (
        "self, address, **kwargs",
        "6814caabf66a4ab8c0e14a5ed88e6c36d93b60dfdd4e0339381488bf8fb263fc",
    ),
    "pickle:dumps": (
        "obj, protocol=None",
        "d24e55a07e7ebbea1804dc60f679ff9123a36e2def7783a0dfd5f83040ee1122",
    ),
    "pickle:loads": (
        "data",
        "030a27e134d0962dca7ca2ce872e49d3e16cd6c81efe6e917a05a5444b48caf7",
    ),
    "serializer:Serializer.__init__": (
        "self, fileName, transmissionBatchSize, tryUseFork, serializer, deserializer, "
        "serializeChecker",
        "1b375ae07ba55f1ccaa66edbf3c6f7115cd98b5cb7f0731c9309427b7ffba1b9",
    ),
    "serializer:Serializer.cancelTransmisstion": (
        "self, id",
        "be4bf31559c13e2c344a771156d2218d6e392154784a4da450c66c53ee926f3e",
    ),
    "serializer:Serializer.checkSerializing": (
        "self",
        "4e867bac671cac22461040c53d6ba57741a0a5d0c95e5aab3262e153ee6bfb88",
    ),
    "serializer:Serializer.deserialize": (
        "self",
        "d34f77608aea96b37bc737465e23547fbb18b2dde94e0bb2277029f52d7edd30",
    ),
    "serializer:Serializer.serialize": (
        "self, data, id",
        "51cea9364110abf96cd4f70cbc5ecfa00ac04b46f2975697a2e4ca97c311a247",
    ),
    "serializer:Serializer.setTransmissionData": (
        "self, data",
        "b3744fa29d455c673489ebac1df3a2179ed4cc3afa6eb3493a5627b3fccd281d",
    ),
    "syncobj:replicated": (
        "*decArgs, **decKwargs",
        "0e087201de5d4291ef2109d1097398f5813de73b8fc9527f91353f70c67002cc",
    ),
    "syncobj:SyncObj.__deleteEntriesFrom": (
        "self, fromIDx",
        "b109c37d95e33eea8a9dac88b076af04e9090a509f9371f12dde4ba0e2060b6e",
    ),
    "syncobj:SyncObj.__getEntries": (
        "self, fromIDx, count=None, maxSizeBytes=None",
        "a59f97100aeab2ad55528257103bb1d226e7c726d273c09a764cd3bd5f9fa274",
    ),
    "syncobj:SyncObj.__getPrevLogIndexTerm": (
        "self, nextNodeIndex",
        "81bd523dab7da3eb589f2605577178f335a7ab94613913bae44babdbb938cc8d",
    ),
    "syncobj:SyncObj.__applyLogEntries": (
        "self",
        "8cfbdce4d62a7c6fa5997b367b3a8c7a267d3c2520392a8ba55ffd50c530b81e",
    ),
    "syncobj:SyncObj.__sendAppendEntries": (
        "self",
        "885dabe88f2d62c291e2ff12e73320abba30f4db49c3e89a70029f4dce3e4ae2",
    ),
    "syncobj:SyncObj.__init__": (
        "self, selfNode, otherNodes, conf=None, consumers=None, nodeClass=TCPNode, "
        "transport=None, transportClass=TCPTransport",
        "7d0b78562141b4a05c6b4267747106d785448fef011549ef4d0ed8594031441c",
    ),
    "syncobj:SyncObj.__loadDumpFile": (
        "self, clearJournal",
        "c23f3aaf3146e3e0555181b90de8ec082eccb4a2263d0d5fd448a2b72476949a",
    ),
    "syncobj:SyncObj.__onBecomeLeader": (
        "self",
        "db85806fd2bc5d114ae8c89ffd29000a1a4ced0be26c29e09ba56e96d39f9186",
    ),
    "syncobj:SyncObj.__onMessageReceived": (
        "self, node, message",
        "a4e54425ce5d04e20e55e22187d1cd15677602491c2391b643bcc017ac4e9910",
    ),
    "syncobj:SyncObj.__sendNextNodeIdx": (
        "self, node, reset=False, nextNodeIdx=None, success=False",
        "b8526090a70386c36ba92cf10035cb78e8d64721eb143445b202cc68016923af",
    ),
    "syncobj:SyncObj.__tryLogCompaction": (
        "self",
        "b1361a2a058366dc3598e4b28651ca2b4e8d37085c26ab761a17002698798577",
    ),
    "syncobj:SyncObj._checkCommandsToApply": (
        "self",
        "12a09fb9c6d4bcdc7b2524b3965de16f6184980f7f5e1a077c28964b50e69188",
    ),
    "syncobj:SyncObj._getLeader": (
        "self",
        "bb03086cb772ff1932950d90acdab36c267bd7fbf4c0464174727802f21e0d35",
    ),
    "syncobj:SyncObj._onTick": (
        "self, timeToWait=0.0",
        "1da9e88c3bb3c09fb00f4c8d47a8758286dcc0d113c3758377a23822da1a3e35",
    ),
    "tcp_connection:TcpConnection.__processConnection": (
        "self, descr, eventType",
        "817546785afb1b81469293d3553bd810ab78a2cd71b6c2a83bfee7ed54de4aeb",
    ),
    "tcp_connection:TcpConnection.__processParseMessage": (
        "self",
        "4cfd683e5ba0216d834bf8a3a2f6b1ebff0f0a8be57dfaa28ca12ef504109845",
    ),
    "tcp_connection:TcpConnection.__processRead": (
        "self",
        "6df0bc127b92f3be2f2dc3d0bb8e943ee015ce802f2e4502a338c61584055daf",
    ),
    "tcp_connection:TcpConnection.__tryReadBuffer": (
        "self",
        "4c8e7ad3f10787c0ba91ae25187467fe704b98be4336d17dd54b47f9cbd2c281",
    ),
    "tcp_connection:TcpConnection.send": (
        "self, message",
        "c38d9829f182e6c875c3392f60fa5b51c41d52adfcf708152a29580cb204d820",
    ),
    "tcp_server:TcpServer.__onNewConnection": (
        "self, descr, event",
        "8cb6d48e601013926c94172d246f45292949183e71f47c9842721d19e0f4d1ff",
    ),
    "tcp_server:TcpServer.bind": (
        "self",
        "1b4b9539a0a780e7d273f3d61128ec706e918527240f0aaa9839923121843b2f",
    ),
    "tcp_server:TcpServer.unbind": (
        "self",
        "4e75d2edb94c7a03d8afdf5a0d44ba9f8618879d4097cf54be3b0f43cdb23f52",
    ),
    "transport:TCPTransport.__init__": (
        "self, syncObj, selfNode, otherNodes",
        "cc085219634db9481dcdb2c31786ff3463ed9aff692f64b433460980e69f171e",
    ),
    "transport:TCPTransport._onNewIncomingConnection": (
        "self, conn",
        "5942a291b79c163e8d0d5463f3fccf81d8705172283ab60a7e3392b869be9051",
    ),
    "transport:TCPTransport._onTick": (
        "self",
        "e15c01ed5e68c5b0b4c6e7d129c9a12759960fb75ad2d581b8bb66fa1344aba7",
    ),
    "transport:TCPTransport._shouldConnect": (
        "self, node",
        "2d79007f686f2da7ce4fc5bda7371f1374a90d3d5f88cadcc306bf9c711492ac",
    ),
    "transport:TCPTransport.addNode": (
        "self, node",
        "14bb41477a85c5249c894625918fdb6890d4dd749fe9c75892b7acf5f6eb7d9f",
    ),
}

#: Each patch or override in the adapter -> the upstream functions it replaces, wraps or relies on.
PATCHES: dict[str, tuple[str, ...]] = {
    "install: GcmEncryptor as getEncryptor": (
        "encryptor:getEncryptor",
        "syncobj:SyncObj.__init__",
        "tcp_connection:TcpConnection.send",
        "tcp_connection:TcpConnection.__processParseMessage",
    ),
    "install: NO_COMPRESSION as zlib": (
        "tcp_connection:TcpConnection.send",
        "tcp_connection:TcpConnection.__processParseMessage",
    ),
    "install: _bounded_read as __processRead": (
        "tcp_connection:TcpConnection.__processRead",
        "tcp_connection:TcpConnection.__tryReadBuffer",
        "tcp_connection:TcpConnection.__processConnection",
        "tcp_connection:TcpConnection.__processParseMessage",
    ),
    "install: _accept as __onNewConnection": (
        "tcp_server:TcpServer.__onNewConnection",
        "tcp_server:TcpServer.bind",
    ),
    "install: PICKLE_PROTOCOL as pickle.__protocol": (
        "pickle:dumps",
        "pickle:loads",
        "syncobj:replicated",
        "tcp_connection:TcpConnection.send",
        "tcp_connection:TcpConnection.__processParseMessage",
    ),
    "use_journal_factory: createJournal": ("journal:createJournal", "syncobj:SyncObj.__init__"),
    # FsyncJournal keeps commands on disk and slices lazily (server/journal.py): it relies on
    # how PySyncObj indexes, slices and iterates its journal.
    "FsyncJournal: commands read when used": (
        "syncobj:SyncObj.__getEntries",
        "syncobj:SyncObj.__applyLogEntries",
        "syncobj:SyncObj.__sendAppendEntries",
        "syncobj:SyncObj.__onMessageReceived",
        "syncobj:SyncObj.__tryLogCompaction",
        "syncobj:SyncObj.__loadDumpFile",
    ),
    "PeerNode.__init__": ("node:TCPNode.__init__", "node:Node.__init__"),
    "PeerTransport.__init__": ("transport:TCPTransport.__init__",),
    "PeerTransport.addNode": ("transport:TCPTransport.addNode",),
    "PeerTransport._shouldConnect": ("transport:TCPTransport._shouldConnect",),
    "PeerTransport._onNewIncomingConnection": ("transport:TCPTransport._onNewIncomingConnection",),
    "PeerTransport._onTick": ("transport:TCPTransport._onTick", "tcp_server:TcpServer.unbind"),
    "LogSyncObj.__init__": ("syncobj:SyncObj.__init__", "serializer:Serializer.__init__"),
    "LogSyncObj._start_snapshot as Serializer.serialize": (
        "serializer:Serializer.serialize",
        "syncobj:SyncObj.__tryLogCompaction",
    ),
    "LogSyncObj._snapshot_progress as serializeChecker": (
        "serializer:Serializer.checkSerializing",
    ),
    "LogSyncObj._read_snapshot as deserializer": (
        "serializer:Serializer.deserialize",
        "syncobj:SyncObj.__loadDumpFile",
    ),
    "LogSyncObj._onTick": ("syncobj:SyncObj._onTick", "syncobj:SyncObj.__applyLogEntries"),
    "LogSyncObj._SyncObj__getPrevLogIndexTerm": (
        "syncobj:SyncObj.__getPrevLogIndexTerm",
        "syncobj:SyncObj.__getEntries",
        "syncobj:SyncObj.__sendAppendEntries",
    ),
    "LogSyncObj._checkCommandsToApply": ("syncobj:SyncObj._checkCommandsToApply",),
    # Returning False drops the AppendEntries round _onTick sends after every apply.
    "LogSyncObj._SyncObj__applyLogEntries": (
        "syncobj:SyncObj.__applyLogEntries",
        "syncobj:SyncObj._onTick",
    ),
    "LogSyncObj._SyncObj__sendNextNodeIdx": ("syncobj:SyncObj.__sendNextNodeIdx",),
    "LogSyncObj._SyncObj__deleteEntriesFrom": (
        "syncobj:SyncObj.__deleteEntriesFrom",
        "syncobj:SyncObj.__onMessageReceived",
    ),
    "LogSyncObj._SyncObj__loadDumpFile": ("syncobj:SyncObj.__loadDumpFile",),
    "LogSyncObj._SyncObj__onMessageReceived": (
        "syncobj:SyncObj.__onMessageReceived",
        "serializer:Serializer.setTransmissionData",
        "serializer:Serializer.cancelTransmisstion",
    ),
    "LogSyncObj._SyncObj__onBecomeLeader": (
        "syncobj:SyncObj.__onBecomeLeader",
        "serializer:Serializer.cancelTransmisstion",
    ),
    "LogSyncObj.leader": ("syncobj:SyncObj._getLeader",),
}

#: The classes the adapter subclasses: every method they override must be in PATCHES.
SUBCLASSES = (
    (LogSyncObj, pysyncobj.syncobj.SyncObj),
    (PeerTransport, pysyncobj.transport.TCPTransport),
    (PeerNode, pysyncobj.node.TCPNode),
)


@cache
def _upstream_def(target: str) -> tuple[str, ast.FunctionDef]:
    """The source file of ``target``'s module and its definition there (read from disk, so
    functions the adapter has since replaced in memory are seen as upstream wrote them)."""
    module, _, qualname = target.partition(":")
    spec = importlib.util.find_spec(f"pysyncobj.{module}")
    assert spec is not None and spec.origin is not None
    text = Path(spec.origin).read_text()
    body: list[ast.stmt] = ast.parse(text).body
    node: ast.AST | None = None
    for part in qualname.split("."):
        node = next(
            (n for n in body if isinstance(n, ast.ClassDef | ast.FunctionDef) and n.name == part),
            None,
        )
        assert node is not None, f"PySyncObj's {module} has no {qualname} any more"
        body = node.body
    assert isinstance(node, ast.FunctionDef)
    return text, node


def _class(path: str) -> type:
    module, _, name = path.rpartition(".")
    found: type = getattr(importlib.import_module(module), name)
    return found


def _names_in(cls: type) -> set[str]:
    """Attributes of ``cls`` and every name its own functions use (instance attributes are
    assigned in its methods, so they appear in their code objects, mangled)."""
    names = set(dir(cls))
    for member in vars(cls).values():
        if isinstance(member, FunctionType):
            names |= set(member.__code__.co_names)
    return names


def test_the_installed_release_is_the_pinned_one() -> None:
    pysyncobj_adapter.check_version()  # what importing the adapter does
    with pytest.raises(RuntimeError, match=r"verified against PySyncObj 0\.3\.17"):
        pysyncobj_adapter.check_version("0.3.18")


@pytest.mark.parametrize("target", sorted(UPSTREAM))
def test_upstream_is_what_the_patches_were_verified_against(target: str) -> None:
    text, node = _upstream_def(target)
    parameters, recorded = UPSTREAM[target]
    source = ast.get_source_segment(text, node)
    assert source is not None
    actual = hashlib.sha256(source.encode()).hexdigest()
    relying = [patch for patch, targets in PATCHES.items() if target in targets]
    advice = f"re-verify {relying} in server/pysyncobj_adapter.py"
    assert ast.unparse(node.args) == parameters, f"{target}'s signature changed: {advice}"
    assert actual == recorded, f"{target} changed: {advice}, then record sha256 {actual}"


def test_every_patch_names_recorded_upstream_functions() -> None:
    named = {target for targets in PATCHES.values() for target in targets}
    assert named <= set(UPSTREAM), sorted(named - set(UPSTREAM))
    assert set(UPSTREAM) <= named, f"pinned but relied on by no patch: {set(UPSTREAM) - named}"


@pytest.mark.parametrize(("ours", "base"), SUBCLASSES)
def test_every_override_is_recorded_as_a_patch(ours: type, base: type) -> None:
    overrides = {
        f"{ours.__name__}.{name}"
        for name, member in vars(ours).items()
        if isinstance(member, FunctionType | property) and hasattr(base, name)
    }
    assert overrides, "the scan found nothing: it is wrong"
    assert overrides <= set(PATCHES), f"not recorded in PATCHES: {sorted(overrides - set(PATCHES))}"


@pytest.mark.parametrize("name", sorted(n for n in vars(LogSyncObj) if n.startswith("_SyncObj__")))
def test_every_private_override_is_still_called_through_self(name: str) -> None:
    """A subclass replaces a private method only if upstream looks it up on the instance."""
    callers = [
        member
        for member in vars(pysyncobj.syncobj.SyncObj).values()
        if isinstance(member, FunctionType) and name in member.__code__.co_names
    ]
    assert callers, f"SyncObj no longer calls {name}: LogSyncObj's override is never reached"


@pytest.mark.parametrize(
    ("function", "name"),
    [
        (pysyncobj.syncobj.SyncObj.__init__, "getEncryptor"),
        (pysyncobj.syncobj.SyncObj.__init__, "createJournal"),
        (pysyncobj.tcp_connection.TcpConnection.send, "zlib"),
        (pysyncobj.pickle.dumps, "__protocol"),
        (
            pysyncobj.tcp_connection.TcpConnection._TcpConnection__processParseMessage,  # type: ignore[attr-defined]
            "zlib",
        ),
    ],
)
def test_replaced_globals_are_looked_up_when_used(function: FunctionType, name: str) -> None:
    """Replacing a module global takes effect only where upstream reads it at call time."""
    assert name in function.__code__.co_names


@pytest.mark.parametrize(
    ("path", "name"),
    [(path, name) for path, names in pysyncobj_adapter.PRIVATE_NAMES.items() for name in names],
)
def test_every_private_name_we_use_exists(path: str, name: str) -> None:
    assert name in _names_in(_class(path)), f"{path} has no {name} any more"


@pytest.mark.parametrize(("module", "name"), pysyncobj_adapter.REPLACED_GLOBALS)
def test_every_replaced_global_exists(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


def test_only_the_adapter_uses_private_names_and_all_are_on_record() -> None:
    recorded = {name for names in pysyncobj_adapter.PRIVATE_NAMES.values() for name in names}
    used = {path.name: set(MANGLED.findall(path.read_text())) for path in SERVER.glob("*.py")}
    assert used["pysyncobj_adapter.py"], "the scan found nothing: the pattern is wrong"
    outside = {name: found for name, found in used.items() if found}
    del outside["pysyncobj_adapter.py"]
    assert not outside, f"PySyncObj internals used outside server/pysyncobj_adapter.py: {outside}"
    missing = used["pysyncobj_adapter.py"] - recorded
    assert not missing, f"not listed in PRIVATE_NAMES: {sorted(missing)}"


def test_only_the_adapter_replaces_pysyncobj_globals() -> None:
    patched = re.compile(r"\bpysyncobj\w*\.\w+(?:\.\w+)* = ")
    outside = [
        path.name
        for path in SERVER.glob("*.py")
        if path.name != "pysyncobj_adapter.py" and patched.search(path.read_text())
    ]
    assert not outside


def test_the_process_wide_patches_take_effect() -> None:
    import pysyncobj.tcp_server as server

    pysyncobj_adapter.install()
    assert pysyncobj.syncobj.getEncryptor is peer_transport.GcmEncryptor
    assert pysyncobj.tcp_connection.zlib.compress(b"x" * 100) == b"x" * 100  # no compression
    tcp = pysyncobj.tcp_connection.TcpConnection
    assert tcp._TcpConnection__processRead is pysyncobj_adapter._bounded_read  # type: ignore[attr-defined]
    assert server.TcpServer._TcpServer__onNewConnection is pysyncobj_adapter._accept  # type: ignore[attr-defined]
    # Commands and peer messages carry bytes as they are, not as latin-1 text in UTF-8.
    assert b"\xff" * 64 in pysyncobj.pickle.dumps((7, [b"\xff" * 64]))


def test_the_journal_factory_takes_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pysyncobj.syncobj, "createJournal", pysyncobj.journal.createJournal)
    pysyncobj_adapter.use_journal_factory(str)
    assert pysyncobj.syncobj.createJournal is str
