"""The PySyncObj internals the Raft adapter depends on still exist, and are all on record."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import FunctionType

import pytest

from logact.server import peer_transport, pysyncobj_pin

SERVER = Path(pysyncobj_pin.__file__).parent
MANGLED = re.compile(r"\b_(?:SyncObj|Serializer|TcpConnection|TcpServer)__[A-Za-z]+")


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
    pysyncobj_pin.check_version()  # what importing the adapter does
    with pytest.raises(RuntimeError, match=r"verified against PySyncObj 0\.3\.17"):
        pysyncobj_pin.check_version("0.3.18")


@pytest.mark.parametrize(
    ("path", "name"),
    [(path, name) for path, names in pysyncobj_pin.PRIVATE_NAMES.items() for name in names],
)
def test_every_private_name_we_use_exists(path: str, name: str) -> None:
    assert name in _names_in(_class(path)), f"{path} has no {name} any more"


@pytest.mark.parametrize(("module", "name"), pysyncobj_pin.REPLACED_GLOBALS)
def test_every_replaced_global_exists(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


def test_every_mangled_name_in_the_server_is_on_record() -> None:
    recorded = {name for names in pysyncobj_pin.PRIVATE_NAMES.values() for name in names}
    used = {
        name
        for path in SERVER.glob("*.py")
        if path.name != "pysyncobj_pin.py"
        for name in MANGLED.findall(path.read_text())
    }
    assert used, "the scan found nothing: the pattern is wrong"
    assert used <= recorded, f"not listed in server/pysyncobj_pin.py: {sorted(used - recorded)}"


def test_the_process_wide_patches_take_effect() -> None:
    import pysyncobj.syncobj as syncobj
    import pysyncobj.tcp_connection as tcp
    import pysyncobj.tcp_server as server

    peer_transport.install()
    assert syncobj.getEncryptor is peer_transport.GcmEncryptor
    assert tcp.zlib.compress(b"x" * 100) == b"x" * 100  # no compression
    assert tcp.TcpConnection._TcpConnection__processRead is peer_transport._bounded_read
    assert server.TcpServer._TcpServer__onNewConnection is peer_transport._accept
