"""Cluster / node configuration loaded from TOML, validated into frozen dataclasses.

Bad configuration fails at load time with a ``ConfigError`` naming the offending key, never later
inside a running node.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logact.server import bus_patterns
from logact.server.commands import Limits
from logact.server.replicated_form import MAX_GUARDS
from logact.server.tls import TlsSettings


class ConfigError(ValueError):
    """The configuration file is missing, unparsable or inconsistent."""


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    append: frozenset[str]  # entry types this role may append; "*" means any
    admin: bool = False  # may trim, and claim any fencing name
    claim: frozenset[str] = frozenset()  # fencing names this role may claim (e.g. "driver")
    #: Buses the rights above apply to, and buses the role may read (``bus_patterns``).
    buses: tuple[str, ...] = bus_patterns.ANY
    read: tuple[str, ...] = bus_patterns.ANY

    def may_append(self, etype: str) -> bool:
        return "*" in self.append or etype in self.append


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: tuple[Role, ...]

    def may_append(self, etype: str) -> bool:
        """Whether some role grants ``etype`` (on some bus)."""
        return any(role.may_append(etype) for role in self.roles)

    @property
    def admin(self) -> bool:
        return any(role.admin for role in self.roles)

    def may_claim(self, name: str) -> bool:
        return any(role.admin or name in role.claim for role in self.roles)

    def _on(self, role: Role, bus: str) -> bool:
        return bus_patterns.matches(role.buses, bus, self.name)

    def may_append_on(self, etype: str, bus: str) -> bool:
        return any(role.may_append(etype) and self._on(role, bus) for role in self.roles)

    def may_claim_on(self, name: str, bus: str) -> bool:
        return any(
            (role.admin or name in role.claim) and self._on(role, bus) for role in self.roles
        )

    def may_trim(self, bus: str) -> bool:
        return any(role.admin and self._on(role, bus) for role in self.roles)

    def may_read(self, bus: str) -> bool:
        return any(bus_patterns.matches(role.read, bus, self.name) for role in self.roles)


@dataclass(frozen=True, slots=True)
class Unsafe:
    """Deliberately broken modes, only for proving the chaos checkers catch what they claim.

    ``stale_reads``: reads and check_tail skip the read barrier (a lagging node answers from its
    own copy). ``no_dedup``: idempotency keys are ignored, so a retried append can land twice.
    """

    stale_reads: bool = False
    no_dedup: bool = False
    #: Start beyond loopback with weak secrets: only test clusters in network namespaces,
    #: whose private addresses carry the fixed test tokens.
    weak_secrets: bool = False

    @property
    def any(self) -> bool:
        return self.stale_reads or self.no_dedup or self.weak_secrets


@dataclass(frozen=True, slots=True)
class NodeConfig:
    id: str
    client_host: str
    client_port: int
    raft_host: str | None
    raft_port: int | None
    data_dir: str
    #: Peer id -> the address this node dials that peer at, when it differs from the peer's
    #: Raft address (a chaos proxy between the two). Peers are still known by their address.
    raft_dial: dict[str, str] = field(default_factory=dict)

    @property
    def client_address(self) -> str:
        return f"{self.client_host}:{self.client_port}"

    @property
    def raft_address(self) -> str:
        return f"{self.raft_host}:{self.raft_port}"


@dataclass(frozen=True, slots=True)
class RaftTuning:
    """PySyncObj timing; the defaults favour low commit latency on a small cluster."""

    append_entries_period: float = 0.01
    #: How long PySyncObj's tick thread waits for a message before it ticks anyway. Messages
    #: and new commands wake it at once; its timer is only for heartbeats and election
    #: deadlines, so ticking more often than a heartbeat is due does nothing. At 0.002 the
    #: timer ticks cost each node 8-9 % of a core when idle and ~14 % of the cluster's CPU
    #: per append under load (issue 18, benchmarks/README.md).
    auto_tick_period: float = 0.01
    raft_min_timeout: float = 0.4
    raft_max_timeout: float = 1.2
    leader_fallback_timeout: float = 3.0
    connection_timeout: float = 2.0
    log_compaction_min_entries: int = 20_000
    log_compaction_min_time: float = 120.0
    commands_queue_size: int = 100_000


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The [server] table: timeouts and the limits on what a client can make a node hold.

    Every limit is listed with its error in docs/protocol.md, "Limits and hostile input".
    """

    #: Server-side timeout of one replicated operation before it is reported as ``timeout``.
    request_timeout: float = 10.0
    #: Bounded per-connection outbound queue (frames); a subscriber that falls this far behind
    #: for ``slow_consumer_timeout`` seconds is cut off with ``overloaded``.
    send_queue_frames: int = 256
    slow_consumer_timeout: float = 10.0
    #: A connection whose replies cannot be written for this long (its client reads nothing)
    #: is closed.
    write_timeout: float = 30.0
    max_inflight_per_connection: int = 512
    #: Open subscriptions per connection, and per principal on one node.
    max_subscriptions_per_connection: int = 64
    max_subscriptions_per_principal: int = 1024
    #: Until 'hello' succeeds: the largest frame, and how long a connection may take to say it.
    preauth_max_frame: int = 64 * 1024
    hello_timeout: float = 5.0
    #: Open client connections per node (fitted under RLIMIT_NOFILE at start) and per peer IP.
    max_connections: int = 4096
    max_connections_per_peer: int = 1024
    #: An authenticated connection with no request, subscription or reply in flight for this
    #: long is closed.
    idle_timeout: float = 600.0
    #: Request frames in flight plus replies not yet sent: per connection and per node. Past
    #: either, a node stops reading from the connection until its replies drain.
    max_connection_bytes: int = 64 * 1024 * 1024
    max_node_bytes: int = 512 * 1024 * 1024
    #: A failed 'hello' is answered after this delay, doubled for each further failure from the
    #: same address within a minute (at most 5 s).
    failed_hello_delay: float = 0.1


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    mode: str  # "raft" or "embedded"
    nodes: tuple[NodeConfig, ...]
    durability: str  # "fsync" (default) or "os"
    password: str | None
    tokens: dict[str, Principal]
    limits: Limits = field(default_factory=Limits)
    raft: RaftTuning = field(default_factory=RaftTuning)
    server: ServerSettings = field(default_factory=ServerSettings)
    unsafe: Unsafe = field(default_factory=Unsafe)
    #: Entry type -> the fencing name that guards it (``[auth.fences]``): once that name is
    #: claimed on a bus, appends of the type there must carry its current fence.
    fences: dict[str, str] = field(default_factory=dict)
    tls: TlsSettings = field(default_factory=TlsSettings)
    #: SHA-256 (hex) of every principal's token, including those only given as a hash
    #: (``token_sha256``): what nodes authenticate against. ``tokens`` holds the plain ones
    #: this file knows, for clients (the CLI) that read it.
    token_hashes: dict[str, Principal] = field(default_factory=dict)
    #: ``module:function`` checking bodies of typed entries at the edge (``[auth] validator``).
    validator: str | None = None

    def __post_init__(self) -> None:
        if not self.token_hashes:
            hashes = {token_digest(t): p for t, p in self.tokens.items()}
            object.__setattr__(self, "token_hashes", hashes)

    def node(self, node_id: str) -> NodeConfig:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise ConfigError(f"no node {node_id!r} in the configuration")

    def principal_for(self, token: str) -> Principal | None:
        return self.token_hashes.get(token_digest(token))


def _address(value: Any, where: str) -> tuple[str, int]:
    if not isinstance(value, str) or value.count(":") != 1:
        raise ConfigError(f"{where} must be 'host:port', got {value!r}")
    host, port_text = value.split(":")
    if not host:
        raise ConfigError(f"{where} has an empty host: {value!r}")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where} has an invalid port: {value!r}")
    return host, int(port_text)


def _table(data: dict[str, Any], key: str, where: str | None = None) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{where or key}] must be a table")
    return value


def _positive(value: Any, expected: type[int] | type[float], where: str) -> Any:
    """A finite, positive int or float; bools and NaN/inf are refused."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or isinstance(value, bool):
        raise ConfigError(f"{where} must be {expected.__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where} must be a positive, finite number")
    return value


def _settings(defaults: dict[str, Any], data: dict[str, Any], where: str) -> dict[str, Any]:
    """Typed overrides of ``defaults`` from table ``data``; unknown keys are errors."""
    values = {}
    for key, value in data.items():
        if key not in defaults:
            raise ConfigError(f"unknown key {key!r} in [{where}]")
        values[key] = _positive(value, type(defaults[key]), f"[{where}] {key}")
    return values


def _dataclass_from(cls: Any, data: dict[str, Any], where: str) -> Any:
    """An instance of the dataclass ``cls``: its defaults, overridden by ``data``."""
    defaults = cls()
    names = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(cls)}
    return cls(**_settings(names, data, where))


def _reject_unknown(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}")


def _check_raft_timing(raft: RaftTuning) -> None:
    """The constraints PySyncObj asserts at node start, reported at load time instead."""
    rules = [
        (raft.raft_min_timeout < raft.raft_max_timeout, "raft_min_timeout < raft_max_timeout"),
        (
            raft.connection_timeout >= raft.raft_max_timeout,
            "connection_timeout >= raft_max_timeout",
        ),
        (
            raft.raft_min_timeout > 3 * raft.append_entries_period,
            "raft_min_timeout > 3 * append_entries_period",
        ),
        (
            raft.leader_fallback_timeout > raft.append_entries_period,
            "leader_fallback_timeout > append_entries_period",
        ),
        (raft.log_compaction_min_entries >= 2, "log_compaction_min_entries >= 2"),
    ]
    broken = [rule for holds, rule in rules if not holds]
    if broken:
        raise ConfigError(f"[raft] settings must satisfy: {', '.join(broken)}")


def parse_config(data: dict[str, Any], base: Path | None = None) -> ClusterConfig:
    """``base``: the directory relative paths (TLS files) are resolved against."""
    _reject_unknown(
        data,
        {
            "mode",
            "durability",
            "nodes",
            "cluster",
            "auth",
            "limits",
            "raft",
            "server",
            "unsafe",
            "tls",
        },
        "the top level",
    )
    mode = data.get("mode", "raft")
    if mode not in ("raft", "embedded"):
        raise ConfigError("mode must be 'raft' or 'embedded'")
    durability = data.get("durability", "fsync")
    if durability not in ("fsync", "os"):
        raise ConfigError("durability must be 'fsync' or 'os'")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise ConfigError("at least one [[nodes]] entry is required")
    nodes = []
    for index, raw in enumerate(raw_nodes):
        where = f"nodes[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise ConfigError(f"{where} needs a string 'id'")
        _reject_unknown(raw, {"id", "client", "raft", "data_dir", "raft_dial"}, where)
        client_host, client_port = _address(raw.get("client"), f"{where}.client")
        raft_host = raft_port = None
        if mode == "raft":
            raft_host, raft_port = _address(raw.get("raft"), f"{where}.raft")
        data_dir = raw.get("data_dir", f"data/{raw['id']}")
        if not isinstance(data_dir, str):
            raise ConfigError(f"{where}.data_dir must be a string")
        dial = raw.get("raft_dial", {})
        if not isinstance(dial, dict):
            raise ConfigError(f"{where}.raft_dial must be a table of peer id = address")
        for peer, address in dial.items():
            _address(address, f"{where}.raft_dial.{peer}")
        nodes.append(
            NodeConfig(
                raw["id"], client_host, client_port, raft_host, raft_port, data_dir, dict(dial)
            )
        )
    ids = [node.id for node in nodes]
    if len(set(ids)) != len(ids):
        raise ConfigError("node ids must be unique")
    for node in nodes:
        unknown = sorted(set(node.raft_dial) - set(ids) | ({node.id} & set(node.raft_dial)))
        if unknown:
            raise ConfigError(f"node {node.id}: raft_dial names no peer: {unknown}")
    addresses = [node.client_address for node in nodes]
    if mode == "raft":
        addresses += [node.raft_address for node in nodes]
    duplicated = sorted({a for a in addresses if addresses.count(a) > 1})
    if duplicated:
        raise ConfigError(f"every client and raft address must be distinct: {duplicated}")
    if mode == "embedded" and len(nodes) != 1:
        raise ConfigError("embedded mode takes exactly one node")
    cluster = _table(data, "cluster")
    _reject_unknown(cluster, {"password", "password_file"}, "[cluster]")
    password = _password(cluster, base or Path.cwd())
    if mode == "raft" and (not isinstance(password, str) or len(password) < 8):
        raise ConfigError("[cluster] password (8+ characters) is required: Raft peers unpickle")
    auth = _table(data, "auth")
    tokens, token_hashes = _parse_auth(auth, base or Path.cwd())
    fences = _parse_fences(_table(auth, "fences", "auth.fences"))
    validator = auth.get("validator")
    if validator is not None and (
        not isinstance(validator, str) or not re.fullmatch(r"[\w.]+:\w+", validator)
    ):
        raise ConfigError("[auth] validator must be 'package.module:function'")
    limits = _dataclass_from(Limits, _table(data, "limits"), "limits")
    raft = _dataclass_from(RaftTuning, _table(data, "raft"), "raft")
    _check_raft_timing(raft)
    server = _dataclass_from(ServerSettings, _table(data, "server"), "server")
    unsafe = _parse_unsafe(_table(data, "unsafe"))
    tls = _parse_tls(_table(data, "tls"), base or Path.cwd())
    return ClusterConfig(
        mode,
        tuple(nodes),
        durability,
        password,
        tokens,
        limits,
        raft,
        server,
        unsafe,
        fences,
        tls,
        token_hashes,
        validator,
    )


def _parse_tls(data: dict[str, Any], base: Path) -> TlsSettings:
    keys = ("cert", "key", "client_ca", "ca", "client_cert", "client_key")
    _reject_unknown(data, set(keys), "[tls]")
    paths: dict[str, Path] = {}
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"[tls] {key} must be a file path")
        paths[key] = base / value
    if ("cert" in paths) != ("key" in paths):
        raise ConfigError("[tls] cert and key go together")
    if "client_ca" in paths and "cert" not in paths:
        raise ConfigError("[tls] client_ca needs the node's own cert and key")
    if ("client_cert" in paths) != ("client_key" in paths):
        raise ConfigError("[tls] client_cert and client_key go together")
    return TlsSettings(**paths)


def _parse_fences(data: dict[str, Any]) -> dict[str, str]:
    guarded: dict[str, str] = {}
    for name, types in data.items():
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise ConfigError(f"[auth.fences] {name} must be a list of entry types")
        for etype in types:
            if guarded.setdefault(etype, name) != name:
                raise ConfigError(f"[auth.fences] {etype!r} is guarded by two names")
    if len(data) > MAX_GUARDS:
        raise ConfigError(f"[auth.fences] names at most {MAX_GUARDS} fencing names")
    return guarded


def _parse_unsafe(data: dict[str, Any]) -> Unsafe:
    _reject_unknown(data, set(Unsafe.__dataclass_fields__), "[unsafe]")
    for key, value in data.items():
        if not isinstance(value, bool):
            raise ConfigError(f"[unsafe] {key} must be true or false")
    return Unsafe(**data)


def _patterns(raw: dict[str, Any], key: str, role: str) -> tuple[str, ...]:
    patterns = raw.get(key, list(bus_patterns.ANY))
    if not isinstance(patterns, list) or not all(
        isinstance(p, str) and bus_patterns.valid(p) for p in patterns
    ):
        raise ConfigError(
            f"[auth.roles.{role}] {key} must be a list of bus patterns "
            "(bus id characters, '*', '**', '{principal}')"
        )
    return tuple(patterns)


def _password(cluster: dict[str, Any], base: Path) -> Any:
    """The Raft password, given as ``password`` or read from ``password_file``."""
    if "password" in cluster and "password_file" in cluster:
        raise ConfigError("[cluster] takes password or password_file, not both")
    if "password_file" not in cluster:
        return cluster.get("password")
    name = cluster["password_file"]
    if not isinstance(name, str) or not name:
        raise ConfigError("[cluster] password_file must be a non-empty string")
    return _read_secret(base / name, "[cluster] password_file")


def _read_secret(path: Path, where: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"{where}: {exc} (`logact secrets init --config FILE` creates missing secret files; "
            "`logact cluster up` does it too)"
        ) from None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


_TOKEN_SOURCES = ("token", "token_sha256", "token_file", "token_env")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _token(raw: dict[str, Any], where: str, base: Path) -> tuple[str | None, str]:
    """(the plain token if this file can know it, its SHA-256 hex) from exactly one source."""
    given = [key for key in _TOKEN_SOURCES if key in raw]
    if len(given) != 1:
        raise ConfigError(f"{where} needs exactly one of {', '.join(_TOKEN_SOURCES)}")
    (source,) = given
    value = raw[source]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} {source} must be a non-empty string")
    if source == "token_sha256":
        if not _SHA256.fullmatch(value):
            raise ConfigError(f"{where} token_sha256 must be 64 lowercase hex digits")
        return None, value
    if source == "token_file":
        value = _read_secret(base / value, f"{where} token_file")
    elif source == "token_env":
        if raw[source] not in os.environ:
            raise ConfigError(f"{where}: environment variable {raw[source]} is not set")
        value = os.environ[raw[source]].strip()
    if len(value) < 8:
        raise ConfigError(f"{where} needs a token of 8+ characters")
    return value, token_digest(value)


def _parse_auth(
    auth: dict[str, Any], base: Path
) -> tuple[dict[str, Principal], dict[str, Principal]]:
    """(plain token -> principal, token SHA-256 -> principal)."""
    _reject_unknown(auth, {"roles", "principals", "fences", "validator"}, "[auth]")
    roles: dict[str, Role] = {}
    for name, raw in _table(auth, "roles", "auth.roles").items():
        if not isinstance(raw, dict):
            raise ConfigError(f"[auth.roles.{name}] must be a table")
        _reject_unknown(raw, {"append", "admin", "claim", "buses", "read"}, f"[auth.roles.{name}]")
        append = raw.get("append", [])
        if not isinstance(append, list) or not all(isinstance(t, str) for t in append):
            raise ConfigError(f"[auth.roles.{name}] append must be a list of entry types")
        admin = raw.get("admin", False)
        if not isinstance(admin, bool):
            raise ConfigError(f"[auth.roles.{name}] admin must be true or false")
        claim = raw.get("claim", [])
        if not isinstance(claim, list) or not all(isinstance(c, str) for c in claim):
            raise ConfigError(f"[auth.roles.{name}] claim must be a list of fencing names")
        buses = _patterns(raw, "buses", name)
        read = _patterns(raw, "read", name)
        roles[name] = Role(name, frozenset(append), admin, frozenset(claim), buses, read)
    principals = auth.get("principals", [])
    if not isinstance(principals, list) or not principals:
        raise ConfigError("at least one [[auth.principals]] entry is required")
    tokens: dict[str, Principal] = {}
    hashes: dict[str, Principal] = {}
    for index, raw in enumerate(principals):
        where = f"auth.principals[{index}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        _reject_unknown(raw, {"name", "roles", *_TOKEN_SOURCES}, where)
        principal_name, role_names = raw.get("name"), raw.get("roles", [])
        if not isinstance(principal_name, str) or not principal_name:
            raise ConfigError(f"{where} needs a 'name'")
        token, digest = _token(raw, where, base)
        if digest in hashes:
            raise ConfigError(f"{where}: token is shared with another principal")
        if any(p.name == principal_name for p in hashes.values()):
            raise ConfigError(f"{where}: name {principal_name!r} is taken by another principal")
        if (
            not isinstance(role_names, list)
            or not role_names
            or not all(isinstance(r, str) for r in role_names)
        ):
            raise ConfigError(f"{where} needs a non-empty 'roles' list of role names")
        unknown = [r for r in role_names if r not in roles]
        if unknown:
            raise ConfigError(f"{where} names unknown roles {unknown}")
        principal = Principal(principal_name, tuple(roles[r] for r in role_names))
        hashes[digest] = principal
        if token is not None:
            tokens[token] = principal
    return tokens, hashes


def load_config(path: str | Path) -> ClusterConfig:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from None
    return parse_config(data, Path(path).resolve().parent)
