"""Choosing the model an agent's parts talk to: a scripted stand-in, the local llama.cpp
server, or any OpenAI-compatible endpoint; and the driver's default instructions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import openai

from logact.agent.models.llm import (
    LLMConfig,
    Message,
    ModelError,
    ScriptedModel,
    make_client,
    parse_script,
    replay_script,
)

#: Model sources: ``env`` (OPENAI_BASE_URL / OPENAI_API_KEY / LOGACT_MODEL), ``local`` (SmolLM2
#: on llama.cpp, the ``llm`` extra) and ``script`` (fixed replies, labelled scripted).
SOURCES = ("env", "local", "script")

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful software agent working in a sandboxed workspace. Act only through the "
    "tools. Every action is reviewed before it runs and may be rejected: if one is rejected, "
    "read the reason and continue with a safer way to reach the goal. If an action is reported "
    "IN DOUBT, examine the environment before redoing or undoing it. When the task is done, "
    "answer with a short summary and no tool call."
)


def load_script(path: str) -> list[Message]:
    """The replies of the script file at ``path`` (:func:`~logact.agent.models.llm.parse_script`);
    ModelError, in one line naming the file, if it cannot be read or is not a script."""
    try:
        return parse_script(json.loads(Path(path).read_text()))
    except OSError as exc:
        raise ModelError(f"script {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # not JSON, or not a script (ModelError is no ValueError)
        raise ModelError(f"script {path}: not JSON: {exc}") from exc
    except ModelError as exc:
        raise ModelError(f"script {path}: {exc}") from exc


@asynccontextmanager
async def open_model(
    source: str,
    script: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    scripted_responder: Callable[[], Any] | None = None,
) -> AsyncIterator[tuple[openai.OpenAI, str]]:
    """(openai client, model name) for ``source``; a local server lives as long as this.
    ``script``: a JSON file of replies for ``script`` (or ``scripted_responder``)."""
    if source == "script":
        if scripted_responder is not None:
            responder = scripted_responder()
        elif script is not None:
            responder = replay_script(load_script(script))
        else:
            raise ModelError("--llm script needs --script FILE")
        yield ScriptedModel(responder).client(), "scripted"
    elif source == "local":
        from logact.agent.models.local_llm import serve_local_model  # only with the [llm] extra

        async with serve_local_model() as local:
            yield make_client(LLMConfig(local.base_url, local.api_key, local.model)), local.model
    elif source == "env":
        config = LLMConfig.from_env(base_url, model=model)
        yield make_client(config), config.model
    else:
        raise ModelError(f"unknown model source {source!r} (one of {', '.join(SOURCES)})")
