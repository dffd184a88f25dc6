"""The executor's tool registry: built-in tools confined to a workspace, app functions."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from logact.agent.core.entries import Result, ToolCall
from logact.agent.tools.registry import (
    ACTION_ENV,
    ToolError,
    ToolOutcome,
    ToolRegistry,
    standard_tools,
)


def call(tool: str, **arguments: object) -> ToolCall:
    return ToolCall(tool=tool, arguments=arguments)


@pytest.fixture
def tools(ws: Path) -> ToolRegistry:
    return standard_tools(ws, shell_timeout=5, output_cap=2000)


# --- shell -------------------------------------------------------------------------------------


@pytest.mark.process
async def test_shell_happy_path_captures_stdout_and_stderr(tools: ToolRegistry) -> None:
    out = await tools.run(call("shell", command="echo hello; echo oops >&2"))
    assert out.ok and out.error is None
    assert "hello" in out.output and "oops" in out.output
    assert out.duration_ms >= 0


@pytest.mark.process
async def test_shell_cwd_is_inside_workspace(tools: ToolRegistry, ws: Path) -> None:
    (ws / "sub").mkdir()
    out = await tools.run(call("shell", command="pwd"))
    assert out.ok and Path(out.output.strip()).resolve() == ws.resolve()
    out = await tools.run(call("shell", command="pwd", cwd="sub"))
    assert out.ok and Path(out.output.strip()).resolve() == (ws / "sub").resolve()


@pytest.mark.parametrize("cwd", ["..", "/", "/tmp", "missing"])
async def test_shell_cwd_outside_or_missing_refused(tools: ToolRegistry, cwd: str) -> None:
    out = await tools.run(call("shell", command="touch escaped", cwd=cwd))
    assert not out.ok and out.error


@pytest.mark.process
async def test_shell_nonzero_exit(tools: ToolRegistry) -> None:
    out = await tools.run(call("shell", command="echo partial; exit 3"))
    assert not out.ok
    assert out.error == "exit code 3"
    assert "partial" in out.output


@pytest.mark.process
async def test_shell_timeout_kills_process_group(tools: ToolRegistry, ws: Path) -> None:
    with trio.fail_after(10):
        out = await tools.run(
            call(
                "shell",
                command="echo started; (sleep 1; touch late) & sleep 30",
                timeout=0.5,
            )
        )
    assert not out.ok
    assert out.error == "timed out after 0.5s"
    assert "started" in out.output
    # The background job was in the killed process group: it never gets to touch the file.
    await trio.sleep(1.2)
    assert not (ws / "late").exists()


@pytest.mark.process
async def test_shell_env_allow_list(tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGACT_SECRET_TOKEN", "hunter2")
    monkeypatch.setenv("LANG", "C.UTF-8")
    out = await tools.run(call("shell", command="env"))
    assert out.ok
    names = {line.split("=", 1)[0] for line in out.output.splitlines() if "=" in line}
    assert "LOGACT_SECRET_TOKEN" not in names
    assert "hunter2" not in out.output
    assert "LANG=C.UTF-8" in out.output
    allowed = {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}  # PWD etc. set by sh
    assert names <= allowed


@pytest.mark.process
async def test_shell_custom_env_allow(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGACT_SHARED", "yes")
    reg = standard_tools(ws, env_allow=("PATH", "LOGACT_SHARED"))
    out = await reg.run(call("shell", command='echo "v=$LOGACT_SHARED h=$HOME"'))
    assert out.ok and out.output.strip() == "v=yes h="


@pytest.mark.process
async def test_shell_output_cap_keeps_head_and_tail(tools: ToolRegistry) -> None:
    out = await tools.run(call("shell", command="echo FIRSTLINE; seq 1 20000; echo LASTLINE"))
    assert out.ok
    assert len(out.output) <= 2000
    assert out.output.startswith("FIRSTLINE")
    assert out.output.rstrip().endswith("LASTLINE")
    assert "cut" in out.output


@pytest.mark.process
async def test_shell_failure_output_also_capped(tools: ToolRegistry) -> None:
    out = await tools.run(call("shell", command="seq 1 20000; exit 1"))
    assert not out.ok and len(out.output) <= 2000


@pytest.mark.parametrize("timeout", [0, -1, 10_000])
async def test_shell_bad_timeout(tools: ToolRegistry, timeout: float) -> None:
    out = await tools.run(call("shell", command="true", timeout=timeout))
    assert not out.ok and "timeout" in (out.error or "")


# --- files -------------------------------------------------------------------------------------


async def test_write_read_append_list(tools: ToolRegistry, ws: Path) -> None:
    out = await tools.run(call("write_file", path="a/b/c.txt", content="héllo\n"))
    assert out.ok, out.error
    assert (ws / "a/b/c.txt").read_text() == "héllo\n"
    out = await tools.run(call("write_file", path="a/b/c.txt", content="more\n", append=True))
    assert out.ok
    out = await tools.run(call("read_file", path="a/b/c.txt"))
    assert out.ok and out.output == "héllo\nmore\n"
    out = await tools.run(call("write_file", path="a/b/c.txt", content="new"))
    assert out.ok and (ws / "a/b/c.txt").read_text() == "new"
    (ws / "z.txt").write_text("z")
    out = await tools.run(call("list_dir"))
    assert out.ok and out.output.splitlines() == ["a/", "z.txt"]
    out = await tools.run(call("list_dir", path="a/b"))
    assert out.ok and out.output == "c.txt"


async def test_absolute_path_inside_workspace_allowed(tools: ToolRegistry, ws: Path) -> None:
    (ws / "f.txt").write_text("ok")
    out = await tools.run(call("read_file", path=str(ws / "f.txt")))
    assert out.ok and out.output == "ok"


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd", "ABS_OUTSIDE", ".."])
async def test_path_escapes_refused(tools: ToolRegistry, ws: Path, path: str) -> None:
    if path == "ABS_OUTSIDE":
        path = str(ws.parent / "x")  # an absolute path outside the workspace
    calls = [call("read_file", path=path), call("list_dir", path=path)]
    if path != "/etc/passwd":  # never risk writing a real system file, even if the code is broken
        calls.append(call("write_file", path=path, content="pwned"))
    for c in calls:
        out = await tools.run(c)
        assert not out.ok, (c, out)
        assert "outside the workspace" in (out.error or ""), out.error
    assert not (ws.parent / "x").exists()


async def test_symlink_to_outside_refused(tools: ToolRegistry, ws: Path) -> None:
    outside = ws.parent / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("top secret")
    (ws / "link.txt").symlink_to(secret)
    (ws / "linkdir").symlink_to(outside)
    for c in (
        call("read_file", path="link.txt"),
        call("read_file", path="linkdir/secret.txt"),
        call("write_file", path="link.txt", content="pwned"),
        call("write_file", path="linkdir/new.txt", content="pwned"),
        call("list_dir", path="linkdir"),
        call("shell", command="true", cwd="linkdir"),
    ):
        out = await tools.run(c)
        assert not out.ok, c
        assert "outside the workspace" in (out.error or "")
        assert "top secret" not in out.output
    assert secret.read_text() == "top secret"
    assert not (outside / "new.txt").exists()


async def test_symlink_inside_workspace_allowed(tools: ToolRegistry, ws: Path) -> None:
    (ws / "real.txt").write_text("real")
    (ws / "alias.txt").symlink_to(ws / "real.txt")
    out = await tools.run(call("read_file", path="alias.txt"))
    assert out.ok and out.output == "real"


async def test_file_errors(tools: ToolRegistry, ws: Path) -> None:
    (ws / "d").mkdir()
    out = await tools.run(call("read_file", path="missing.txt"))
    assert not out.ok and "no such file" in (out.error or "")
    out = await tools.run(call("read_file", path="d"))
    assert not out.ok
    out = await tools.run(call("write_file", path="d", content="x"))
    assert not out.ok and "directory" in (out.error or "")
    out = await tools.run(call("list_dir", path="missing"))
    assert not out.ok


async def test_file_size_caps(ws: Path) -> None:
    reg = standard_tools(ws, max_read_bytes=100, max_write_bytes=100, output_cap=50)
    out = await reg.run(call("write_file", path="big.txt", content="x" * 101))
    assert not out.ok and "write cap" in (out.error or "")
    assert not (ws / "big.txt").exists()
    (ws / "big.txt").write_text("y" * 101)
    out = await reg.run(call("read_file", path="big.txt"))
    assert not out.ok and "read cap" in (out.error or "")
    (ws / "mid.txt").write_text("m" * 100)
    out = await reg.run(call("read_file", path="mid.txt"))
    assert out.ok and len(out.output) <= 50


# --- validation, registry ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "needle"),
    [
        (call("shell"), "missing required argument 'command'"),
        (call("shell", command=5), "'command' must be string, got integer"),
        (call("shell", command="true", timeout="1"), "'timeout' must be number"),
        (call("shell", command="true", timeout=True), "'timeout' must be number"),
        (call("shell", command="true", bogus=1), "unexpected argument 'bogus'"),
        (call("write_file", path="x"), "missing required argument 'content'"),
        (call("write_file", path="x", content="y", append="yes"), "'append' must be boolean"),
        (call("read_file", path=None), "'path' must be string, got null"),
        (call("read_file", path=""), "must not be empty"),
        (call("shell", command="  "), "must not be empty"),
    ],
)
async def test_argument_validation(tools: ToolRegistry, c: ToolCall, needle: str) -> None:
    out = await tools.run(c)
    assert not out.ok
    assert needle in (out.error or ""), out.error


async def test_unknown_tool(tools: ToolRegistry) -> None:
    out = await tools.run(call("rm_rf", path="/"))
    assert not out.ok and "unknown tool 'rm_rf'" in (out.error or "")


async def test_python_functions_sync_and_async() -> None:
    reg = ToolRegistry()

    def add(a: int, b: int = 1) -> int:
        return a + b

    async def greet(name: str) -> str:
        await trio.sleep(0)
        return f"hi {name}"

    def boom() -> None:
        raise RuntimeError("kaput")

    async def aboom() -> None:
        raise ToolError("custom failure", output="partial")

    def blocking(x: str) -> dict[str, str]:
        return {"x": x}

    reg.register("add", add, description="add numbers")
    reg.register("greet", greet, description="greet")
    reg.register("boom", boom, description="fails")
    reg.register("aboom", aboom, description="fails async")
    reg.register("blocking", blocking, description="in a thread", in_thread=True)

    out = await reg.run(call("add", a=2, b=3))
    assert isinstance(out, ToolOutcome) and (out.ok, out.output, out.error) == (True, "5", None)
    assert (await reg.run(call("add", a=2))).output == "3"
    out = await reg.run(call("add", a="2"))
    assert not out.ok and "'a' must be integer" in (out.error or "")
    out = await reg.run(call("add", b=2))
    assert not out.ok and "missing required argument 'a'" in (out.error or "")
    assert (await reg.run(call("greet", name="bob"))).output == "hi bob"
    out = await reg.run(call("boom"))
    assert not out.ok and out.error == "RuntimeError: kaput"
    out = await reg.run(call("aboom"))
    assert not out.ok and out.error == "custom failure" and out.output == "partial"
    out = await reg.run(call("blocking", x="y"))
    assert out.ok and out.output == '{"x": "y"}'


async def test_explicit_schema_and_kwargs_mismatch() -> None:
    reg = ToolRegistry()
    # The schema allows an argument the function does not take: the TypeError is an outcome.
    reg.register(
        "f",
        lambda: "ok",
        description="f",
        schema={"type": "object", "properties": {"x": {"type": "string"}}},
    )
    assert (await reg.run(call("f"))).output == "ok"
    out = await reg.run(call("f", x="1"))
    assert not out.ok and (out.error or "").startswith("TypeError")


def test_register_rejects_bad_definitions() -> None:
    reg = ToolRegistry()
    reg.register("ok", lambda: None, description="d")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("ok", lambda: None, description="d")
    with pytest.raises(ValueError, match="tool name"):
        reg.register("bad name!", lambda: None, description="d")
    with pytest.raises(ValueError, match="description"):
        reg.register("nodesc", lambda: None, description="")
    with pytest.raises(TypeError):
        reg.register("notfn", "nope", description="d")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ToolRegistry(output_cap=0)


def test_describe_shape(tools: ToolRegistry) -> None:
    def lookup(key: str, limit: int = 10) -> str:
        return key

    tools.register("lookup", lookup, description="look a key up")
    defs = tools.describe()
    names = [d["function"]["name"] for d in defs]
    assert names == ["shell", "read_file", "write_file", "list_dir", "lookup"]
    for d in defs:
        assert d["type"] == "function"
        fn = d["function"]
        assert set(fn) == {"name", "description", "parameters"}
        assert fn["description"]
        assert fn["parameters"]["type"] == "object"
        assert isinstance(fn["parameters"]["properties"], dict)
    shell = defs[0]["function"]["parameters"]
    assert shell["required"] == ["command"]
    assert set(shell["properties"]) == {"command", "cwd", "timeout"}
    lk = defs[-1]["function"]["parameters"]
    assert lk["properties"] == {"key": {"type": "string"}, "limit": {"type": "integer"}}
    assert lk["required"] == ["key"]
    assert lk["additionalProperties"] is False


@pytest.mark.process
async def test_outcome_to_result(tools: ToolRegistry) -> None:
    ok = await tools.run(call("shell", command="echo hi"))
    res = ok.to_result(7)
    assert isinstance(res, Result) and res.ok and res.output == "hi\n" and res.intent_id == 7
    bad = await tools.run(call("nope"))
    res = bad.to_result(8)
    assert not res.ok and res.error == bad.error


@pytest.mark.process
async def test_shell_sees_the_intent_it_runs_for(tools: ToolRegistry) -> None:
    """The executor names the action's bus and intent id in the command's environment."""
    token = ACTION_ENV.set((("LOGACT_BUS", "agent/7"), ("LOGACT_INTENT_ID", "42")))
    try:
        out = await tools.run(call("shell", command='echo "$LOGACT_BUS $LOGACT_INTENT_ID"'))
    finally:
        ACTION_ENV.reset(token)
    assert out.output.strip() == "agent/7 42"
    unset = await tools.run(call("shell", command='echo "[$LOGACT_INTENT_ID]"'))
    assert unset.output.strip() == "[]"
