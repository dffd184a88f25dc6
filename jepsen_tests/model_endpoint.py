"""A scripted OpenAI-compatible HTTP endpoint for agent processes (tests and chaos runs).

The outermost edge only: driver processes talk to it through the real ``openai`` client over
real HTTP (``--llm env`` with OPENAI_BASE_URL). ``hold`` parks chosen requests until released,
so a test can freeze a driver in the middle of a model call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from logact.agent.models.llm import ScriptedModel, replay_script

Message = dict[str, Any]

#: The rule voter's file in agent process tests: allow all but a recursive or forced rm.
RULES = """
default = "allow"

[[rules]]
effect = "deny"
reason = "recursive or forced rm"
text = { regex = '\\brm\\s+-[A-Za-z]*[rRf]' }
"""
#: The scripted LLM voter's one concern (``--scripted-deny``).
LLM_DENY = "curl=sends data off the machine, which the task did not ask for"


class ScriptedEndpoint:
    def __init__(self, replies: Sequence[Message]) -> None:
        self.model = ScriptedModel(replay_script(replies))
        self.hold: Callable[[Sequence[Message]], threading.Event | None] = lambda _: None
        self.lock = threading.Lock()
        self.base_url = ""

    def env(self) -> dict[str, str]:
        return {
            "OPENAI_BASE_URL": self.base_url,
            "OPENAI_API_KEY": "scripted",
            "LOGACT_MODEL": "scripted",
        }

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        gate = self.hold(body["messages"])
        if gate is not None:
            gate.wait(60)
        with self.lock:
            return self.model.complete(body)


@contextmanager
def serve(replies: Sequence[Message]) -> Iterator[ScriptedEndpoint]:
    endpoint = ScriptedEndpoint(replies)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            payload = json.dumps(endpoint._answer(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
