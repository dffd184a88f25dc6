"""The executor's tool registry: the actions an agent can take, and how each one is run.

A ``ToolRegistry`` maps tool names to async (or sync) Python callables with a JSON schema for
their arguments. ``run(call)`` validates a ``ToolCall``'s arguments against that schema, runs
the tool and returns a ``ToolOutcome`` -- it never raises for anything the tool or the model
did wrong (bad arguments, unknown tool, an exception in the tool): those become ``ok=False``
outcomes with a readable error. Only cancellation (``trio.Cancelled``) propagates.

``standard_tools(workspace)`` builds a registry with the built-in tools:

- ``shell``: ``/bin/sh -c COMMAND`` in a directory inside the workspace, in a bubblewrap
  sandbox (``agent/tools/sandbox.py``: the workspace is the only writable path, no network, no view
  of the executor) with an environment limited to an allow-list, a timeout that kills the
  whole sandbox, and stdout+stderr captured together and capped (head and tail kept); without
  a working sandbox it refuses to run, unless explicitly built with ``sandbox=None``;
- ``read_file`` / ``write_file`` / ``list_dir``: paths resolved against the workspace root;
  anything that resolves outside it (``..``, absolute paths, symlinks) is refused, the file is
  then opened one component at a time without following any symlink (so a path swapped for a
  symlink meanwhile is refused too), and a file with several hard links is refused.

The application adds its own Python functions with ``register``: they run inside the executor
and so must be trusted code. A tool that handles untrusted input or runs untrusted code is a
program instead, run in the same sandbox as shell commands (``Workspace.program``), with the
network only when that tool's registration allows it. ``describe()`` gives the OpenAI-style
tool definitions the driver passes to the model.

This module does not touch the log: the executor loop turns an outcome into a ``Result`` entry
(``outcome.to_result(intent_id)``).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import json
import os
import re
import signal
import stat
import subprocess
import time
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from logact.agent.core.entries import MAX_OUTPUT_CHARS, Result, ToolCall, cap_output
from logact.agent.tools.sandbox import (
    Sandbox,
    SandboxUnavailable,
    new_pids_group,
    probe,
    remove_pids_group,
)

#: Variables the executor sets for the action it runs (``LOGACT_BUS``, ``LOGACT_INTENT_ID``),
#: passed to shell commands so a side effect can carry its intent's identity (an idempotency
#: key, or a ledger line that can be traced back to the log).
ACTION_ENV: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "logact_action_env", default=()
)

#: Default cap on a tool's output text (characters); must not exceed ``MAX_OUTPUT_CHARS``.
DEFAULT_OUTPUT_CAP = 16_000
#: Default environment variables a shell command inherits from the executor.
DEFAULT_ENV_ALLOW = ("PATH", "HOME", "LANG")
#: Default size caps of the file tools (bytes).
DEFAULT_MAX_READ_BYTES = 1 << 20
DEFAULT_MAX_WRITE_BYTES = 1 << 20
#: Most entries ``list_dir`` reports.
MAX_LIST_ENTRIES = 1000

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
_PY_TO_JSON: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
}


class ToolError(Exception):
    """A tool failed in an expected way: ``message`` becomes the outcome's error and
    ``output`` (e.g. what a failed command printed) its output. Registered functions may
    raise it too."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.output = output


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What running one tool call produced. ``ok`` is true exactly when ``error`` is None."""

    ok: bool
    output: str = ""
    error: str | None = None
    duration_ms: int = 0

    def to_result(self, intent_id: int) -> Result:
        return Result(
            intent_id=intent_id,
            ok=self.ok,
            output=self.output,
            error=self.error,
            duration_ms=self.duration_ms,
        )


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    fn: Callable[..., Any]
    description: str
    schema: dict[str, Any]
    in_thread: bool = False


def _type_name(value: Any) -> str:
    for name, check in _JSON_TYPES.items():
        if check(value):
            return name
    return type(value).__name__


def validate_arguments(schema: Mapping[str, Any], arguments: Any) -> str | None:
    """Why ``arguments`` do not fit ``schema`` (a flat object schema), or None if they do.

    Checks what a model gets wrong: the arguments not being an object, missing required
    arguments, unexpected ones (when ``additionalProperties`` is false), top-level property
    types (``type`` may be a name or a list of names) and ``enum``.
    """
    if not isinstance(arguments, dict):
        return f"arguments must be an object, got {_type_name(arguments)}"
    props: Mapping[str, Any] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in arguments:
            return f"missing required argument {name!r}"
    if schema.get("additionalProperties", True) is False:
        extra = sorted(set(arguments) - set(props))
        if extra:
            return f"unexpected argument {extra[0]!r} (expected: {', '.join(props) or 'none'})"
    for name, value in arguments.items():
        spec = props.get(name)
        if not isinstance(spec, Mapping):
            continue
        types = spec.get("type")
        if types is not None:
            names = [types] if isinstance(types, str) else list(types)
            if not any(_JSON_TYPES.get(t, lambda _v: True)(value) for t in names):
                want = " or ".join(names)
                return f"argument {name!r} must be {want}, got {_type_name(value)}"
        if "enum" in spec and value not in spec["enum"]:
            return f"argument {name!r} must be one of {spec['enum']!r}, got {value!r}"
    return None


def schema_from_signature(fn: Callable[..., Any]) -> dict[str, Any]:
    """A JSON schema for ``fn``'s keyword arguments, from its signature and annotations."""
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    extra = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            extra = True
            continue
        if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY):
            continue
        hint = hints.get(p.name, p.annotation)
        json_type = _PY_TO_JSON.get(typing.get_origin(hint) or hint)
        props[p.name] = {"type": json_type} if json_type else {}
        if p.default is p.empty:
            required.append(p.name)
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if not extra:
        schema["additionalProperties"] = False
    return schema


def _render(value: Any) -> str:
    """A function's return value as output text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class ToolRegistry:
    """Named tools with argument schemas; ``run`` executes one ``ToolCall``."""

    def __init__(self, *, output_cap: int = DEFAULT_OUTPUT_CAP) -> None:
        if not 0 < output_cap <= MAX_OUTPUT_CHARS:
            raise ValueError(f"output_cap must be in 1..{MAX_OUTPUT_CHARS}, got {output_cap}")
        self.output_cap = output_cap
        self._tools: dict[str, Tool] = {}

    def register(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        description: str,
        schema: dict[str, Any] | None = None,
        in_thread: bool = False,
    ) -> None:
        """Add tool ``name``: ``fn(**arguments)``, sync or async, returning its output.

        ``schema`` is the JSON schema of the arguments (an object schema); by default it is
        derived from ``fn``'s signature. A sync ``fn`` runs on the event loop unless
        ``in_thread`` (for blocking work). ``fn`` may raise ``ToolError`` to fail with output.
        """
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"tool name must match {_NAME_RE.pattern}, got {name!r}")
        if name in self._tools:
            raise ValueError(f"tool {name!r} is already registered")
        if not callable(fn):
            raise TypeError(f"tool {name!r}: fn must be callable")
        if not isinstance(description, str) or not description:
            raise ValueError(f"tool {name!r}: description must be a non-empty string")
        if schema is None:
            schema = schema_from_signature(fn)
        elif not isinstance(schema, dict) or schema.get("type", "object") != "object":
            raise ValueError(f"tool {name!r}: schema must be a JSON object schema")
        self._tools[name] = Tool(name, fn, description, schema, in_thread)

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def describe(self) -> list[dict[str, Any]]:
        """OpenAI-style tool definitions (``tools=`` of a chat completion request)."""
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.schema,
                },
            }
            for t in self._tools.values()
        ]

    def _outcome(self, ok: bool, output: str, error: str | None, start: float) -> ToolOutcome:
        ms = max(int((time.perf_counter() - start) * 1000), 0)
        if error is not None:
            # Errors are short by nature; keep them readable even under a tiny output cap.
            error = cap_output(error or "failed", min(max(self.output_cap, 1000), MAX_OUTPUT_CHARS))
        return ToolOutcome(ok, cap_output(output, self.output_cap), error, ms)

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Run ``call``; every failure is an ``ok=False`` outcome, never an exception."""
        start = time.perf_counter()
        tool = self._tools.get(call.tool)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            return self._outcome(False, "", f"unknown tool {call.tool!r} (known: {known})", start)
        if problem := validate_arguments(tool.schema, call.arguments):
            return self._outcome(False, "", f"{tool.name}: {problem}", start)
        try:
            if tool.in_thread:
                value = await trio.to_thread.run_sync(partial(tool.fn, **call.arguments))
            else:
                value = tool.fn(**call.arguments)
            if inspect.isawaitable(value):
                value = await value
            return self._outcome(True, _render(value), None, start)
        except ToolError as e:
            return self._outcome(False, e.output, e.message, start)
        except Exception as e:  # a tool's bug is the model's observation, not our crash
            text = str(e)
            error = f"{type(e).__name__}: {text}" if text else type(e).__name__
            return self._outcome(False, "", error, start)


# --- the built-in tools ------------------------------------------------------------------------


class _Capture:
    """Collects a stream's bytes keeping only a bounded head and tail."""

    def __init__(self, cap: int) -> None:
        self.half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes | bytearray) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > self.half:
            cut = len(self.tail) - self.half
            del self.tail[:cut]
            self.dropped += cut

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        while chunk := await stream.receive_some(65536):
            self.feed(chunk)

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = self.tail.decode("utf-8", errors="replace")
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} bytes cut ...]\n{tail}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _deliver_kill(proc: trio.Process) -> None:
    _kill_group(proc.pid)


def _describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exit code {returncode}"


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
#: Shell commands run in this sandbox unless a caller explicitly passes another (or None).
DEFAULT_SANDBOX = Sandbox()

_PATH_PROP = {"type": "string", "description": "a path relative to the workspace root"}


class Workspace:
    """The built-in tools, all confined to the directory ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        shell_timeout: float = 30,
        max_shell_timeout: float = 600,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        env_allow: Iterable[str] = DEFAULT_ENV_ALLOW,
        max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
        max_write_bytes: int = DEFAULT_MAX_WRITE_BYTES,
        sandbox: Sandbox | None = DEFAULT_SANDBOX,
    ) -> None:
        self.root = Path(root).resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"workspace {root} is not a directory")
        if not 0 < shell_timeout <= max_shell_timeout:
            raise ValueError("need 0 < shell_timeout <= max_shell_timeout")
        self.shell_timeout = shell_timeout
        self.max_shell_timeout = max_shell_timeout
        self.output_cap = output_cap
        self.env_allow = tuple(env_allow)
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        #: None runs commands unconfined (only by explicit choice: ``--unsafe-no-sandbox``).
        self.sandbox = sandbox

    def resolve(self, path: str) -> Path:
        """``path`` resolved (symlinks followed) against the root; ToolError if outside it."""
        if not path:
            raise ToolError("path must not be empty")
        if "\0" in path:
            raise ToolError("path must not contain NUL characters")
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        try:
            resolved = candidate.resolve()
        except (OSError, RuntimeError) as e:  # RuntimeError: symlink loop (python < 3.13)
            raise ToolError(f"cannot resolve path {path!r}: {e}") from None
        if not resolved.is_relative_to(self.root):
            raise ToolError(f"path {path!r} is outside the workspace")
        return resolved

    def _rel(self, path: Path) -> str:
        return str(path.relative_to(self.root)) or "."

    # shell

    async def shell(self, command: str, cwd: str = ".", timeout: float | None = None) -> str:
        if not command.strip():
            raise ToolError("command must not be empty")
        workdir = self.resolve(cwd)
        if not workdir.is_dir():
            raise ToolError(f"cwd {cwd!r} is not a directory in the workspace")
        limit = self.shell_timeout if timeout is None else timeout
        if not 0 < limit <= self.max_shell_timeout:
            raise ToolError(f"timeout must be in (0, {self.max_shell_timeout:g}] seconds")
        return await self._run(["/bin/sh", "-c", command], workdir, limit, self.sandbox)

    def program(
        self,
        argv: Sequence[str],
        *,
        network: bool = False,
        read_only: Iterable[str] = (),
        timeout: float | None = None,
    ) -> Callable[..., Awaitable[str]]:
        """A tool function running the program ``argv`` the way shell commands run: in the
        sandbox (network only if ``network``; ``read_only`` host directories visible, e.g. the
        program's own), in the workspace root, killed after ``timeout``. Its arguments arrive
        as one JSON object on stdin; its stdout and stderr are the output, and a non-zero exit
        is an error. This is how a tool that handles untrusted input or code is registered::

            registry.register("fetch", ws.program(["/usr/bin/python3", "/opt/t/fetch.py"],
                network=True, read_only=["/opt/t"]), description=..., schema=...)
        """
        command = list(argv)
        if not command or not all(isinstance(a, str) and a for a in command):
            raise ValueError("argv must be a non-empty list of non-empty strings")
        limit = self.shell_timeout if timeout is None else timeout
        if not 0 < limit <= self.max_shell_timeout:
            raise ValueError(f"timeout must be in (0, {self.max_shell_timeout:g}] seconds")
        sandbox = self.sandbox and dataclasses.replace(
            self.sandbox, network=network, read_only=tuple(read_only)
        )

        async def run(**arguments: Any) -> str:
            stdin = json.dumps(arguments, ensure_ascii=False).encode()
            return await self._run(command, self.root, limit, sandbox, stdin)

        return run

    async def _run(
        self,
        command: list[str],
        workdir: Path,
        limit: float,
        sandbox: Sandbox | None,
        stdin: bytes = b"",
    ) -> str:
        """``command``'s output, run in ``sandbox`` (None: unconfined) within ``limit``."""
        env = {k: os.environ[k] for k in self.env_allow if k in os.environ}
        env.update(ACTION_ENV.get())
        async with self._confined(command, sandbox, workdir, env) as (argv, env, preexec):
            return await self._run_process(argv, env, preexec, workdir, limit, stdin)

    async def _run_process(
        self,
        argv: list[str],
        env: dict[str, str],
        preexec: Callable[[], None] | None,
        workdir: Path,
        limit: float,
        stdin: bytes,
    ) -> str:
        capture = _Capture(self.output_cap)
        proc: trio.Process | None = None
        with trio.move_on_after(limit) as scope:
            async with trio.open_nursery() as nursery:
                proc = await nursery.start(
                    partial(
                        trio.run_process,
                        argv,
                        stdin=stdin or subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        cwd=str(workdir),
                        env=env,
                        check=False,
                        start_new_session=True,
                        preexec_fn=preexec,
                        deliver_cancel=_deliver_kill,
                    )
                )
                assert proc.stdout is not None
                nursery.start_soon(capture.drain, proc.stdout)
                # Once the shell exits, end its background jobs so they release the pipe.
                nursery.start_soon(self._reap_group, proc)
        output = capture.text()
        if scope.cancelled_caught:
            raise ToolError(f"timed out after {limit:g}s", output)
        assert proc is not None and proc.returncode is not None
        if proc.returncode != 0:
            raise ToolError(_describe_status(proc.returncode), output)
        return output

    @contextlib.asynccontextmanager
    async def _confined(
        self, command: list[str], sandbox: Sandbox | None, workdir: Path, env: dict[str, str]
    ) -> AsyncIterator[tuple[list[str], dict[str, str], Callable[[], None] | None]]:
        """(argv, environment, pre-exec hook) that run ``command`` in ``sandbox``, with its
        pids cgroup (removed afterwards) where one can be made."""
        if sandbox is None:
            yield command, env, None
            return
        try:
            bwrap = await trio.to_thread.run_sync(probe, sandbox.bwrap)
        except SandboxUnavailable as exc:
            raise ToolError(f"refused to run: {exc}") from None
        sandbox = dataclasses.replace(sandbox, bwrap=bwrap)
        group = new_pids_group(sandbox.limits.processes)
        try:
            yield sandbox.argv(command, self.root, workdir, env), {}, sandbox.preexec(group)
        finally:
            if group is not None:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    while not remove_pids_group(group):  # its last processes are exiting
                        await trio.sleep(0.02)

    @staticmethod
    async def _reap_group(proc: trio.Process) -> None:
        await proc.wait()
        _kill_group(proc.pid)

    # files

    def _open(self, path: str, flags: int, *, make_parents: bool = False) -> int:
        """``path`` opened inside the root, one component at a time, following no symlink.

        ``resolve`` has already followed symlinks (and refused any that leave the root), so
        the resolved path holds none: meeting one now means the path changed meanwhile.
        """
        target = self.resolve(path)
        *parents, name = target.relative_to(self.root).parts or (".",)
        directory = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parents:
                if make_parents:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=directory)
                inner = os.open(part, _DIR_FLAGS, dir_fd=directory)
                os.close(directory)
                directory = inner
            fd = os.open(name, flags | os.O_NOFOLLOW, 0o644, dir_fd=directory)
        except FileNotFoundError:
            raise ToolError(f"no such file: {path!r}") from None
        except OSError as e:
            raise ToolError(f"cannot open {path!r}: {e.strerror or e}") from None
        finally:
            os.close(directory)
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            os.close(fd)
            raise ToolError(f"{path!r} has {st.st_nlink} hard links; only single files are used")
        return fd

    def _read(self, path: str) -> str:
        fd = self._open(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ToolError(f"{path!r} is not a regular file")
            if st.st_size > self.max_read_bytes:
                raise ToolError(
                    f"{path!r} is {st.st_size} bytes, more than the read cap of "
                    f"{self.max_read_bytes}"
                )
            data = f.read(self.max_read_bytes + 1)
        return cap_output(data.decode("utf-8", errors="replace"), self.output_cap)

    def _write(self, path: str, content: str, append: bool) -> str:
        data = content.encode("utf-8")
        if len(data) > self.max_write_bytes:
            raise ToolError(
                f"content is {len(data)} bytes, more than the write cap of {self.max_write_bytes}"
            )
        target = self.resolve(path)
        if target == self.root or target.is_dir():
            raise ToolError(f"{path!r} is a directory")
        # Truncated only after the checks of _open: a hard-linked file is left as it was.
        fd = self._open(
            path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0), make_parents=True
        )
        with os.fdopen(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ToolError(f"{path!r} is not a regular file")
            if not append:
                f.truncate(0)
            f.write(data)
        verb = "appended" if append else "wrote"
        return f"{verb} {len(data)} bytes to {self._rel(target)}"

    def _list(self, path: str) -> str:
        if not self.resolve(path).is_dir():
            raise ToolError(f"{path!r} is not a directory in the workspace")
        fd = self._open(path, _DIR_FLAGS)
        try:
            entries = sorted(os.scandir(fd), key=lambda e: e.name)
        except OSError as e:
            raise ToolError(f"cannot list {path!r}: {e.strerror}") from None
        finally:
            os.close(fd)
        lines = []
        for entry in entries[:MAX_LIST_ENTRIES]:
            if entry.is_symlink():
                lines.append(entry.name + "@")
            elif entry.is_dir():
                lines.append(entry.name + "/")
            else:
                lines.append(entry.name)
        if len(entries) > MAX_LIST_ENTRIES:
            lines.append(f"[... {len(entries) - MAX_LIST_ENTRIES} more entries ...]")
        return cap_output("\n".join(lines), self.output_cap)

    async def read_file(self, path: str) -> str:
        return await trio.to_thread.run_sync(self._read, path)

    async def write_file(self, path: str, content: str, append: bool = False) -> str:
        return await trio.to_thread.run_sync(self._write, path, content, append)

    async def list_dir(self, path: str = ".") -> str:
        return await trio.to_thread.run_sync(self._list, path)

    def register_into(self, registry: ToolRegistry) -> None:
        """Register ``shell``, ``read_file``, ``write_file`` and ``list_dir``."""

        def obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
            return {
                "type": "object",
                "properties": props,
                "required": required,
                "additionalProperties": False,
            }

        registry.register(
            "shell",
            self.shell,
            description=(
                "Run a command with /bin/sh -c in the workspace; returns its stdout and "
                f"stderr. Default timeout {self.shell_timeout:g}s."
            ),
            schema=obj(
                {
                    "command": {"type": "string", "description": "the shell command"},
                    "cwd": {
                        "type": "string",
                        "description": "working directory relative to the workspace root",
                    },
                    "timeout": {"type": "number", "description": "timeout in seconds"},
                },
                ["command"],
            ),
        )
        registry.register(
            "read_file",
            self.read_file,
            description="Read a text file in the workspace.",
            schema=obj({"path": _PATH_PROP}, ["path"]),
        )
        registry.register(
            "write_file",
            self.write_file,
            description=(
                "Write (or with append=true, append) text to a file in the workspace, "
                "creating parent directories."
            ),
            schema=obj(
                {
                    "path": _PATH_PROP,
                    "content": {"type": "string", "description": "the text to write"},
                    "append": {"type": "boolean", "description": "append instead of replace"},
                },
                ["path", "content"],
            ),
        )
        registry.register(
            "list_dir",
            self.list_dir,
            description="List a directory in the workspace (dirs end in /, symlinks in @).",
            schema=obj({"path": _PATH_PROP}, []),
        )


def standard_tools(
    workspace: Path,
    *,
    shell_timeout: float = 30,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    env_allow: Iterable[str] = DEFAULT_ENV_ALLOW,
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES,
    max_write_bytes: int = DEFAULT_MAX_WRITE_BYTES,
    max_shell_timeout: float | None = None,
    sandbox: Sandbox | None = DEFAULT_SANDBOX,
) -> ToolRegistry:
    """A registry holding the built-in tools for ``workspace``; register app functions on it."""
    registry = ToolRegistry(output_cap=output_cap)
    if max_shell_timeout is None:
        max_shell_timeout = max(shell_timeout, 600)
    Workspace(
        workspace,
        shell_timeout=shell_timeout,
        max_shell_timeout=max_shell_timeout,
        output_cap=output_cap,
        env_allow=env_allow,
        max_read_bytes=max_read_bytes,
        max_write_bytes=max_write_bytes,
        sandbox=sandbox,
    ).register_into(registry)
    return registry
