"""Configuration: good files parse into the expected values; every bad one is a ConfigError."""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pysyncobj import SyncObjConf

from logact.server.commands import Limits
from logact.server.config import (
    ClusterConfig,
    ConfigError,
    Principal,
    RaftTuning,
    Role,
    load_config,
    parse_config,
)
from logact.server.raft import syncobj_timing

REPO = Path(__file__).resolve().parents[2]

RAFT: dict[str, Any] = {
    "mode": "raft",
    "cluster": {"password": "long-enough-secret"},
    "nodes": [
        {"id": "n1", "client": "127.0.0.1:7101", "raft": "127.0.0.1:7201"},
        {"id": "n2", "client": "127.0.0.1:7102", "raft": "127.0.0.1:7202", "data_dir": "d/2"},
        {"id": "n3", "client": "127.0.0.1:7103", "raft": "127.0.0.1:7203"},
    ],
    "auth": {
        "roles": {"admin": {"append": ["*"], "admin": True}, "voter": {"append": ["vote"]}},
        "principals": [
            {"name": "root", "token": "root-token-1", "roles": ["admin"]},
            {"name": "v", "token": "voter-token-1", "roles": ["voter"]},
        ],
    },
}

EMBEDDED: dict[str, Any] = {
    "mode": "embedded",
    "nodes": [{"id": "solo", "client": "localhost:7100"}],
    "auth": copy.deepcopy(RAFT["auth"]),
}


def variant(base: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    change(data)
    return data


# ---------------------------------------------------------------- good configurations


def test_repo_cluster_toml(shipped: Callable[[str], Path]) -> None:
    path = shipped("cluster.toml")
    config = load_config(path)
    assert isinstance(config, ClusterConfig)
    assert config.mode == "raft" and config.durability == "fsync"
    assert [n.id for n in config.nodes] == ["n1", "n2", "n3"]
    n1 = config.node("n1")
    assert n1.client_address == "127.0.0.1:7101"
    assert n1.raft_address == "127.0.0.1:7201"
    assert n1.data_dir == "data/n1"
    assert config.limits == Limits(
        max_entry_bytes=1048576, max_batch_entries=1000, max_batch_bytes=4194304
    )
    assert config.server.request_timeout == 10.0 and config.server.slow_consumer_timeout == 10.0
    admin = config.principal_for((path.parent / "secrets" / "admin.token").read_text().strip())
    assert admin is not None and admin.name == "admin" and admin.admin
    observer = config.principal_for(
        (path.parent / "secrets" / "observer.token").read_text().strip()
    )
    assert observer is not None and not observer.admin and not observer.may_append("intent")
    assert config.principal_for("nope") is None
    with pytest.raises(ConfigError, match="no node 'n9'"):
        config.node("n9")


def test_repo_single_toml(shipped: Callable[[str], Path]) -> None:
    config = load_config(shipped("single.toml"))
    assert config.mode == "embedded"
    [node] = config.nodes
    assert (node.id, node.client_host, node.client_port) == ("solo", "127.0.0.1", 7100)
    assert node.raft_host is None and node.raft_port is None
    assert config.password is None
    assert config.raft == RaftTuning() and config.limits == Limits()
    assert {p.name for p in config.tokens.values()} == {"admin", "observer"}


def test_minimal_configs_and_defaults() -> None:
    config = parse_config(RAFT)
    assert config.node("n1").data_dir == "data/n1"
    assert config.node("n2").data_dir == "d/2"
    assert config.password == "long-enough-secret"
    assert config.server.send_queue_frames == 256
    assert config.server.max_inflight_per_connection == 512
    embedded = parse_config(EMBEDDED)
    assert embedded.durability == "fsync" and embedded.mode == "embedded"
    # mode defaults to raft, which needs Raft addresses
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.raft"):
        parse_config(variant(EMBEDDED, lambda d: d.pop("mode")))


def test_tuning_sections_are_parsed_and_ints_widen_to_float() -> None:
    config = parse_config(
        variant(
            RAFT,
            lambda d: d.update(
                limits={"max_read_limit": 10},
                raft={"raft_min_timeout": 1, "log_compaction_min_entries": 5},
                server={
                    "request_timeout": 2,
                    "slow_consumer_timeout": 0.5,
                    "send_queue_frames": 3,
                    "max_inflight_per_connection": 4,
                },
                durability="os",
            ),
        )
    )
    assert config.limits.max_read_limit == 10
    assert config.raft.raft_min_timeout == 1.0 and isinstance(config.raft.raft_min_timeout, float)
    assert config.raft.log_compaction_min_entries == 5
    assert config.server.request_timeout == 2.0 and isinstance(config.server.request_timeout, float)
    assert config.server.slow_consumer_timeout == 0.5
    assert (config.server.send_queue_frames, config.server.max_inflight_per_connection) == (3, 4)
    assert config.durability == "os"


def test_roles_and_principals() -> None:
    config = parse_config(
        variant(RAFT, lambda d: d["auth"]["principals"][1].update(roles=["voter", "admin"]))
    )
    both = config.principal_for("voter-token-1")
    assert both is not None and both.admin and both.may_append("anything")
    voter = Principal("v", (Role("voter", frozenset({"vote"})),))
    assert voter.may_append("vote") and not voter.may_append("commit") and not voter.admin
    assert Role("any", frozenset({"*"})).may_append("x")


# ---------------------------------------------------------------- bad configurations

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("mode", variant(RAFT, lambda d: d.update(mode="paxos")), "mode"),
    ("mode type", variant(RAFT, lambda d: d.update(mode=["raft"])), "mode"),
    ("durability", variant(RAFT, lambda d: d.update(durability="never")), "durability"),
    ("no nodes", variant(RAFT, lambda d: d.pop("nodes")), r"\[\[nodes\]\]"),
    ("empty nodes", variant(RAFT, lambda d: d.update(nodes=[])), r"\[\[nodes\]\]"),
    ("nodes table", variant(RAFT, lambda d: d.update(nodes={"id": "x"})), r"\[\[nodes\]\]"),
    ("node not table", variant(RAFT, lambda d: d.update(nodes=["n1"])), r"nodes\[0\]"),
    ("node no id", variant(RAFT, lambda d: d["nodes"][1].pop("id")), r"nodes\[1\].*'id'"),
    ("node empty id", variant(RAFT, lambda d: d["nodes"][0].update(id="")), "'id'"),
    ("node int id", variant(RAFT, lambda d: d["nodes"][0].update(id=1)), "'id'"),
    ("dup ids", variant(RAFT, lambda d: d["nodes"][1].update(id="n1")), "unique"),
    ("no client", variant(RAFT, lambda d: d["nodes"][0].pop("client")), r"nodes\[0\]\.client"),
    ("no raft", variant(RAFT, lambda d: d["nodes"][2].pop("raft")), r"nodes\[2\]\.raft"),
    ("no port", variant(RAFT, lambda d: d["nodes"][0].update(client="host")), "host:port"),
    ("ipv6ish", variant(RAFT, lambda d: d["nodes"][0].update(client="::1:80")), "host:port"),
    ("port 0", variant(RAFT, lambda d: d["nodes"][0].update(client="h:0")), "invalid port"),
    ("port big", variant(RAFT, lambda d: d["nodes"][0].update(client="h:65536")), "port"),
    ("port text", variant(RAFT, lambda d: d["nodes"][0].update(client="h:http")), "port"),
    ("port neg", variant(RAFT, lambda d: d["nodes"][0].update(client="h:-1")), "port"),
    ("port empty", variant(RAFT, lambda d: d["nodes"][0].update(client="h:")), "port"),
    ("addr int", variant(RAFT, lambda d: d["nodes"][0].update(client=7101)), "host:port"),
    ("data_dir", variant(RAFT, lambda d: d["nodes"][0].update(data_dir=1)), "data_dir"),
    (
        "embedded 2 nodes",
        variant(EMBEDDED, lambda d: d["nodes"].append({"id": "b", "client": "h:1"})),
        "exactly one",
    ),
    ("no password", variant(RAFT, lambda d: d.pop("cluster")), "password"),
    ("short password", variant(RAFT, lambda d: d["cluster"].update(password="short")), "8+"),
    ("int password", variant(RAFT, lambda d: d["cluster"].update(password=12345678)), "password"),
    ("cluster not table", variant(RAFT, lambda d: d.update(cluster="x")), r"\[cluster\]"),
    ("no auth", variant(RAFT, lambda d: d.pop("auth")), "principals"),
    ("auth not table", variant(RAFT, lambda d: d.update(auth=[])), r"\[auth\]"),
    ("no principals", variant(RAFT, lambda d: d["auth"].update(principals=[])), "principals"),
    (
        "principal not table",
        variant(RAFT, lambda d: d["auth"].update(principals=["x"])),
        r"auth\.principals\[0\]",
    ),
    (
        "principal no name",
        variant(RAFT, lambda d: d["auth"]["principals"][0].pop("name")),
        "'name'",
    ),
    (
        "short token",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(token="abc")),
        "8\\+",
    ),
    (
        "int token",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(token=12345678)),
        "token must be a non-empty string",
    ),
    (
        "two token sources",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(token_env="X")),
        "exactly one of token, token_sha256",
    ),
    (
        "bad token hash",
        variant(
            RAFT,
            lambda d: (
                d["auth"]["principals"][0].pop("token")
                and d["auth"]["principals"][0].update(token_sha256="abc")
            ),
        ),
        "64 lowercase hex",
    ),
    (
        "shared token",
        variant(RAFT, lambda d: d["auth"]["principals"][1].update(token="root-token-1")),
        "shared",
    ),
    (
        "no roles",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(roles=[])),
        "'roles'",
    ),
    (
        "roles str",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(roles="admin")),
        "'roles'",
    ),
    (
        "unknown role",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(roles=["admin", "god"])),
        "god",
    ),
    (
        "role not table",
        variant(RAFT, lambda d: d["auth"]["roles"].update(voter=["vote"])),
        r"auth\.roles\.voter",
    ),
    (
        "role append str",
        variant(RAFT, lambda d: d["auth"]["roles"]["voter"].update(append="vote")),
        "append",
    ),
    (
        "role append ints",
        variant(RAFT, lambda d: d["auth"]["roles"]["voter"].update(append=[1])),
        "append",
    ),
    (
        "role admin str",
        variant(RAFT, lambda d: d["auth"]["roles"]["voter"].update(admin="yes")),
        "admin",
    ),
    ("roles not table", variant(RAFT, lambda d: d["auth"].update(roles=[])), "roles"),
    ("limits not table", variant(RAFT, lambda d: d.update(limits=1)), r"\[limits\]"),
    ("limits unknown", variant(RAFT, lambda d: d.update(limits={"max_x": 1})), "max_x"),
    ("limits float", variant(RAFT, lambda d: d.update(limits={"max_read_limit": 1.5})), "int"),
    ("limits bool", variant(RAFT, lambda d: d.update(limits={"max_read_limit": True})), "int"),
    ("limits zero", variant(RAFT, lambda d: d.update(limits={"max_read_limit": 0})), "positive"),
    ("limits neg", variant(RAFT, lambda d: d.update(limits={"max_entry_bytes": -1})), "positive"),
    ("raft unknown", variant(RAFT, lambda d: d.update(raft={"speed": 1})), "speed"),
    ("raft str", variant(RAFT, lambda d: d.update(raft={"raft_min_timeout": "1"})), "float"),
    ("raft bool", variant(RAFT, lambda d: d.update(raft={"raft_min_timeout": True})), "float"),
    ("raft zero", variant(RAFT, lambda d: d.update(raft={"raft_min_timeout": 0})), "positive"),
    (
        "raft int field float",
        variant(RAFT, lambda d: d.update(raft={"commands_queue_size": 1.0})),
        "int",
    ),
    ("server not table", variant(RAFT, lambda d: d.update(server=[])), r"\[server\]"),
    (
        "server timeout str",
        variant(RAFT, lambda d: d.update(server={"request_timeout": "1"})),
        "request_timeout",
    ),
    (
        "server timeout zero",
        variant(RAFT, lambda d: d.update(server={"slow_consumer_timeout": 0})),
        "slow_consumer_timeout",
    ),
    (
        "server frames float",
        variant(RAFT, lambda d: d.update(server={"send_queue_frames": 2.0})),
        "send_queue_frames",
    ),
    (
        "server inflight neg",
        variant(RAFT, lambda d: d.update(server={"max_inflight_per_connection": -3})),
        "max_inflight_per_connection",
    ),
    (
        "bus pattern chars",
        variant(RAFT, lambda d: d["auth"]["roles"]["voter"].update(buses=["a b"])),
        r"voter\] buses must be a list of bus patterns",
    ),
    (
        "read pattern type",
        variant(RAFT, lambda d: d["auth"]["roles"]["voter"].update(read="agent/**")),
        r"voter\] read must be a list",
    ),
    (
        "same name twice",
        variant(RAFT, lambda d: d["auth"]["principals"][1].update(name="root")),
        "name 'root' is taken",
    ),
    (
        "fences not lists",
        variant(RAFT, lambda d: d["auth"].update(fences={"driver": "intent"})),
        r"\[auth.fences\] driver must be a list",
    ),
    (
        "type guarded twice",
        variant(RAFT, lambda d: d["auth"].update(fences={"a": ["intent"], "b": ["intent"]})),
        "guarded by two names",
    ),
]


def test_tokens_from_a_hash_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node needs only hashes; a plain token stays out of the file that clients read."""
    (tmp_path / "voter.token").write_text("voter-token-from-a-file\n")
    monkeypatch.setenv("ROOT_TOKEN", "root-token-from-the-env")

    def change(d: dict[str, Any]) -> None:
        root, voter = d["auth"]["principals"]
        root.pop("token")
        root["token_env"] = "ROOT_TOKEN"
        voter.pop("token")
        voter["token_file"] = "voter.token"
        d["auth"]["principals"].append(
            {
                "name": "hashed",
                "token_sha256": hashlib.sha256(b"only-the-hash-is-stored").hexdigest(),
                "roles": ["voter"],
            }
        )

    config = parse_config(variant(RAFT, change), tmp_path)
    assert config.principal_for("root-token-from-the-env").name == "root"  # type: ignore[union-attr]
    assert config.principal_for("voter-token-from-a-file").name == "v"  # type: ignore[union-attr]
    assert config.principal_for("only-the-hash-is-stored").name == "hashed"  # type: ignore[union-attr]
    assert config.principal_for("guess") is None
    assert set(config.tokens) == {"root-token-from-the-env", "voter-token-from-a-file"}


def test_bus_patterns_and_fences_are_parsed() -> None:
    def change(d: dict[str, Any]) -> None:
        d["auth"]["roles"]["voter"].update(buses=["agent/{principal}/**"], read=["agent/**"])
        d["auth"]["fences"] = {"executor": ["exec_start", "result"]}

    config = parse_config(variant(RAFT, change))
    voter = config.principal_for("voter-token-1")
    assert voter is not None
    assert voter.may_append_on("vote", "agent/v/1") and not voter.may_append_on("vote", "agent/w/1")
    assert voter.may_read("agent/w/1") and not voter.may_read("other/1")
    assert config.fences == {"exec_start": "executor", "result": "executor"}


@pytest.mark.parametrize(("label", "data", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_configs_raise_config_error(label: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------- load_config


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_load_config_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('mode = "raft\n[[nodes]\n')
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_config(path)


def test_load_config_reads_toml(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(
        """
mode = "embedded"
durability = "os"
[[nodes]]
id = "solo"
client = "127.0.0.1:9000"
[auth.roles.admin]
append = ["*"]
admin = true
[[auth.principals]]
name = "a"
token = "12345678"
roles = ["admin"]
[limits]
max_batch_entries = 7
"""
    )
    config = load_config(str(path))
    assert config.durability == "os" and config.limits.max_batch_entries == 7
    assert config.nodes[0].client_port == 9000


# ---------------------------------------------------------------- formerly accepted or crashing

MORE_BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "non-ASCII digits in port",
        variant(RAFT, lambda d: d["nodes"][0].update(client="h:²")),
        "port",
    ),
    (
        "unhashable role name",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(roles=[["admin"]])),
        "roles",
    ),
    (
        "bool request_timeout",
        variant(RAFT, lambda d: d.update(server={"request_timeout": True})),
        "request_timeout",
    ),
    (
        "bool send_queue_frames",
        variant(RAFT, lambda d: d.update(server={"send_queue_frames": True})),
        "send_queue_frames",
    ),
    (
        "NaN request_timeout",
        variant(RAFT, lambda d: d.update(server={"request_timeout": math.nan})),
        "request_timeout",
    ),
    (
        "infinite slow_consumer_timeout",
        variant(RAFT, lambda d: d.update(server={"slow_consumer_timeout": math.inf})),
        "slow_consumer_timeout",
    ),
    (
        "NaN raft timeout",
        variant(RAFT, lambda d: d.update(raft={"raft_min_timeout": math.nan})),
        "raft_min_timeout",
    ),
    (
        "typo in [server]",
        variant(RAFT, lambda d: d.update(server={"request_timeot": 5})),
        "request_timeot",
    ),
    ("typo at the top level", variant(RAFT, lambda d: d.update(durabilty="os")), "durabilty"),
    (
        "typo in a node",
        variant(RAFT, lambda d: d["nodes"][0].update(datadir="x")),
        "datadir",
    ),
    (
        "typo in [cluster]",
        variant(RAFT, lambda d: d["cluster"].update(pasword="x")),
        "pasword",
    ),
    (
        "typo in a role",
        variant(RAFT, lambda d: d["auth"]["roles"]["voter"].update(appends=["x"])),
        "appends",
    ),
    (
        "typo in a principal",
        variant(RAFT, lambda d: d["auth"]["principals"][0].update(role=["admin"])),
        "role",
    ),
    (
        "raft_min_timeout >= raft_max_timeout",
        variant(RAFT, lambda d: d.update(raft={"raft_min_timeout": 1.2})),
        "raft_min_timeout",
    ),
]


@pytest.mark.parametrize(("label", "data", "message"), MORE_BAD, ids=[b[0] for b in MORE_BAD])
def test_more_bad_configs_raise_config_error(
    label: str, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_load_config_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'mode = "r\xe4ft"\n')
    with pytest.raises(ConfigError, match=r"latin1\.toml"):
        load_config(path)


def test_load_config_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path)


# ---------------------------------------------------------------- bugs


def pysyncobj_conf(tuning: RaftTuning) -> SyncObjConf:
    """The PySyncObj settings a node derives from [raft]."""
    return SyncObjConf(**syncobj_timing(tuning))


def test_default_and_repo_raft_tuning_pass_pysyncobj_validation(
    shipped_config: ClusterConfig,
) -> None:
    pysyncobj_conf(RaftTuning()).validate()
    pysyncobj_conf(shipped_config.raft).validate()


#: [raft] settings parse_config accepts but PySyncObj's SyncObjConf.validate() asserts on when
#: the node starts, i.e. bad configuration that is not caught at load time.
RAFT_INCONSISTENT: list[tuple[str, dict[str, Any]]] = [
    ("raft_max_timeout > connection_timeout", {"raft_max_timeout": 5.0}),
    ("raft_min_timeout <= 3 * append_entries_period", {"raft_min_timeout": 0.02}),
    ("leader_fallback_timeout <= append_entries_period", {"leader_fallback_timeout": 0.005}),
    ("log_compaction_min_entries < 2", {"log_compaction_min_entries": 1}),
]


@pytest.mark.parametrize(
    ("label", "raft"), RAFT_INCONSISTENT, ids=[r[0] for r in RAFT_INCONSISTENT]
)
def test_pysyncobj_rejects_these_raft_settings(label: str, raft: dict[str, Any]) -> None:
    """The consequence of the bug below: the node would die on an AssertionError at start."""
    with pytest.raises(AssertionError):
        pysyncobj_conf(RaftTuning(**raft)).validate()


@pytest.mark.parametrize(
    ("label", "raft"), RAFT_INCONSISTENT, ids=[r[0] for r in RAFT_INCONSISTENT]
)
def test_raft_settings_pysyncobj_rejects_are_config_errors(
    label: str, raft: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match=r"\[raft\]"):
        parse_config(variant(RAFT, lambda d: d.update(raft=raft)))


XFAIL_BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "empty host",
        variant(RAFT, lambda d: d["nodes"][0].update(client=":7101")),
        "host",
    ),
    (
        "two nodes with one client address",
        variant(RAFT, lambda d: d["nodes"][1].update(client="127.0.0.1:7101")),
        "address",
    ),
    (
        "two nodes with one raft address",
        variant(RAFT, lambda d: d["nodes"][1].update(raft="127.0.0.1:7201")),
        "address",
    ),
    (
        "client and raft on one address",
        variant(RAFT, lambda d: d["nodes"][0].update(raft="127.0.0.1:7101")),
        "address",
    ),
    (
        "[auth.roles] not a table is reported as [roles]",
        variant(RAFT, lambda d: d["auth"].update(roles=[])),
        r"\[auth\.roles\]",
    ),
]


@pytest.mark.parametrize(("label", "data", "message"), XFAIL_BAD, ids=[b[0] for b in XFAIL_BAD])
def test_inconsistent_configs_raise_config_error(
    label: str, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_unsafe_modes_are_off_unless_asked_for() -> None:
    assert not parse_config(RAFT).unsafe.any
    config = parse_config(variant(RAFT, lambda d: d.update(unsafe={"stale_reads": True})))
    assert config.unsafe.stale_reads and not config.unsafe.no_dedup and config.unsafe.any
    with pytest.raises(ConfigError, match=r"\[unsafe\] no_dedup must be true or false"):
        parse_config(variant(RAFT, lambda d: d.update(unsafe={"no_dedup": 1})))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['fast'\] in \[unsafe\]"):
        parse_config(variant(RAFT, lambda d: d.update(unsafe={"fast": True})))


def test_raft_dial_addresses_name_peers() -> None:
    """A node may dial a peer at another address (a chaos proxy); the peer is still known by
    its Raft address."""

    def dial(table: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
        return lambda d: d["nodes"][0].update(raft_dial=table)

    config = parse_config(variant(RAFT, dial({"n2": "127.0.0.1:9002"})))
    assert config.node("n1").raft_dial == {"n2": "127.0.0.1:9002"}
    assert config.node("n2").raft_dial == {}
    with pytest.raises(ConfigError, match=r"raft_dial names no peer: \['n9'\]"):
        parse_config(variant(RAFT, dial({"n9": "127.0.0.1:9002"})))
    with pytest.raises(ConfigError, match=r"raft_dial names no peer: \['n1'\]"):
        parse_config(variant(RAFT, dial({"n1": "127.0.0.1:9002"})))
    with pytest.raises(ConfigError, match=r"raft_dial\.n2"):
        parse_config(variant(RAFT, dial({"n2": "nowhere"})))
