"""Where executed actions run: a bubblewrap sandbox with the workspace as the only writable path.

A committed action is still untrusted code: a prompt injection may have shaped it. So shell
commands (and code blocks, which run through the shell tool) run in fresh namespaces:

- **filesystem**: ``/usr`` read-only (with the usual ``/bin``, ``/lib`` symlinks), a handful
  of ``/etc`` files programs need to start, a private ``/tmp``, fresh ``/proc`` and ``/dev``,
  and the workspace read-write at its own path; nothing else of the host exists, so neither
  the executor's config (tokens, the Raft password) nor its data is there to read;
- **processes**: a new PID namespace (``/proc`` shows only the sandbox, never the executor's
  environment or command line) and a new session; ``--die-with-parent`` and the namespace make
  killing bubblewrap kill every process in it, ``setsid`` children included;
- **network** off (its own empty namespace) unless the sandbox allows it;
- **privileges**: every capability dropped, an environment built only from what the caller
  passes, and rlimits on CPU, memory, file size, open files and processes.

``RLIMIT_NPROC`` does not bind root, so each action also gets its own pids cgroup (v1
hierarchy ``/sys/fs/cgroup/pids``) capping its processes, when the executor may create one;
otherwise (no such hierarchy, no rights) an executor running as root relies on the timeout,
which kills the whole namespace, against fork bombs. Kernel exploits are out of scope.

If bubblewrap is missing or cannot create namespaces (e.g. an unprivileged container), the
executor refuses to run actions and says how to fix it: ``probe`` is the fail-closed check.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Files and directories of /etc that ordinary programs read at start, bound read-only if
#: present. Deliberately not /etc as a whole: it holds host secrets (shadow, ssh keys, ...).
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/alternatives",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
)
#: With network on, name resolution and TLS roots too.
ETC_NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/ssl", "/etc/ca-certificates")
HOW_TO_FIX = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) on a host or VM that "
    "allows namespaces, or run the executor with --unsafe-no-sandbox if you accept that "
    "actions can read and change everything the executor can"
)


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be set up here; actions must not run."""


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """rlimits of every sandboxed process (inherited by their children)."""

    cpu_seconds: int = 120
    memory_bytes: int = 2 << 30  # address space
    file_bytes: int = 1 << 30  # largest file a process may write
    open_files: int = 1024
    processes: int = 512  # binds only when the executor is not root (see module doc)

    def apply(self) -> None:
        """Set the limits on the calling process (called in the child before exec)."""
        for kind, value in (
            (resource.RLIMIT_CPU, self.cpu_seconds),
            (resource.RLIMIT_AS, self.memory_bytes),
            (resource.RLIMIT_FSIZE, self.file_bytes),
            (resource.RLIMIT_NOFILE, self.open_files),
            (resource.RLIMIT_NPROC, self.processes),
        ):
            resource.setrlimit(kind, (value, value))


@dataclass(frozen=True, slots=True)
class Sandbox:
    network: bool = False
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    bwrap: str = "bwrap"
    #: Absolute host paths bound read-only at the same place (e.g. a tool program's directory).
    read_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for path in self.read_only:
            if not os.path.isabs(path) or os.path.normpath(path) in ("/", "/proc", "/dev"):
                raise ValueError(f"read_only paths must be absolute directories, got {path!r}")

    def argv(
        self, command: list[str], workspace: Path, cwd: Path, env: Mapping[str, str]
    ) -> list[str]:
        """The bubblewrap command line that runs ``command`` in ``cwd`` (inside ``workspace``)."""
        args = [
            self.bwrap,
            "--unshare-all",
            *(["--share-net"] if self.network else []),
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for link in ("bin", "sbin", "lib", "lib64"):
            args += ["--symlink", f"usr/{link}", f"/{link}"]
        for path in ETC_FILES + (ETC_NETWORK_FILES if self.network else ()):
            args += ["--ro-bind-try", path, path]
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in self.read_only:  # after /tmp, which would hide those under it
            args += ["--ro-bind", path, path]
        args += ["--bind", str(workspace), str(workspace), "--chdir", str(cwd), "--clearenv"]
        for name, value in sorted(env.items()):
            args += ["--setenv", name, value]
        return [*args, "--", *command]

    def preexec(self, pids_group: Path | None) -> Callable[[], None]:
        """What the child runs before exec: the rlimits, then joining ``pids_group``."""

        def prepare() -> None:
            # Join first: once RLIMIT_NOFILE is lowered below the descriptors this process
            # still holds (they are closed only at exec), no file can be opened any more.
            if pids_group is not None:
                (pids_group / "cgroup.procs").write_text(str(os.getpid()))
            self.limits.apply()

        return prepare


PIDS_HIERARCHY = Path("/sys/fs/cgroup/pids")
_groups = itertools.count()


def new_pids_group(limit: int) -> Path | None:
    """A fresh pids cgroup admitting at most ``limit`` processes, or None where this process
    cannot make one (no v1 pids hierarchy, or no right to write it)."""
    _sweep_orphans()
    group = PIDS_HIERARCHY / f"logact-{os.getpid()}-{next(_groups)}"
    try:
        group.mkdir()
    except OSError:
        return None
    try:
        (group / "pids.max").write_text(str(limit))
    except OSError:
        remove_pids_group(group)
        return None
    return group


def _sweep_orphans() -> None:
    """Remove the empty groups of executors that are gone (a crash skips their cleanup)."""
    with contextlib.suppress(OSError):
        for group in PIDS_HIERARCHY.glob("logact-*-*"):
            owner = group.name.split("-")[1]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                with contextlib.suppress(OSError):
                    group.rmdir()


def remove_pids_group(group: Path) -> bool:
    """Kill what is left in ``group`` and remove it; False while processes are still exiting."""
    with contextlib.suppress(OSError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


@functools.cache
def probe(bwrap: str = "bwrap") -> str:
    """The path of a bubblewrap that works here (it ran ``true`` in a sandbox), or
    SandboxUnavailable saying why and how to fix it. Checked once per process."""
    path = shutil.which(bwrap)
    if path is None:
        raise SandboxUnavailable(
            f"the sandbox needs bubblewrap ({bwrap!r} is not on PATH): {HOW_TO_FIX}"
        )
    with tempfile.TemporaryDirectory(prefix="logact-probe-") as scratch:
        workspace = Path(scratch)
        command = Sandbox(bwrap=path).argv(["/bin/true"], workspace, workspace, {})
        try:
            done = subprocess.run(command, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"bubblewrap could not start: {exc}; {HOW_TO_FIX}") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()[:300] or f"exit {done.returncode}"
        raise SandboxUnavailable(
            f"bubblewrap cannot create a sandbox here ({reason}); {HOW_TO_FIX}"
        )
    return path


def unavailable(bwrap: str = "bwrap") -> str | None:
    """Why the sandbox cannot run here (how to fix it included), or None if it can."""
    try:
        probe(bwrap)
    except SandboxUnavailable as exc:
        return str(exc)
    return None
