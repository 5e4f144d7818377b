"""`loci mcp` end to end: the mcp client library talks to a real `python -m app.cli mcp` process,
which calls a live Loci server through the SDK; over stdio, over streamable HTTP, and in process."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from app.local_server import free_port
from app.mcp_backend import NoApiKey, local_api_key
from app.settings import Settings

REPO = Path(__file__).resolve().parent.parent
TOOLS = {"remember", "recall", "list_memories", "forget", "feedback"}


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "LOCI_HOME": str(home), "LOCI_LOG_LEVEL": "warning", **extra}


def _stdio(args: list[str], env: dict[str, str], errlog: Any) -> Client:
    params = StdioServerParameters(command=sys.executable, args=["-m", "app.cli", "mcp", *args], env=env, cwd=REPO)
    return Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120)


def _assert_clean_stdout(caplog: pytest.LogCaptureFixture) -> None:
    """The stdio client logs every stdout line that is not a protocol message; there must be none."""
    assert not [r for r in caplog.records if r.name == "mcp.client.stdio"], "the server wrote non-protocol stdout"


async def _call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured answer; fails the test if the tool reported an error."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def _error(client: Client, tool: str, **arguments: Any) -> str:
    """The text of a tool error (the call must fail as a tool result, not as a protocol error)."""
    result: CallToolResult = await client.call_tool(tool, arguments)
    assert result.is_error
    return result.content[0].text  # type: ignore[union-attr]


async def _exercise(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and len(tool.description) > 150, tool.name
        assert tool.input_schema["properties"], tool.name
        assert tool.output_schema is not None, tool.name
    assert tools["remember"].input_schema["properties"]["type"]["enum"] == ["episodic", "semantic", "procedural"]
    assert tools["recall"].annotations.read_only_hint is True
    assert tools["forget"].annotations.destructive_hint is True

    diet = (await _call(client, "remember", content="Ann is vegetarian", type="semantic", user_id="ann"))["id"]
    move = await _call(
        client,
        "remember",
        content="Ann moved to Lisbon in March 2024",
        type="episodic",
        user_id="ann",
        session_id="chat-1",
        event_at="2024-03-02T10:00:00Z",
    )
    deploy = await _call(
        client,
        "remember",
        content="To deploy the shop: run the test suite, then make release",
        type="procedural",
        user_id="ann",
        attributes={"trigger": "deploying the shop", "steps": ["run the test suite", "make release"]},
    )
    jazz = await _call(
        client, "remember", content="Ann listens to jazz records", type="semantic", user_id="ann", source="tool"
    )
    await _call(
        client, "remember", content="Bob is vegetarian too and allergic to peanuts", type="semantic", user_id="bob"
    )

    hits = (await _call(client, "recall", query="what does Ann eat?", user_id="ann", k=5))["results"]
    assert hits[0]["id"] == diet and hits[0]["type"] == "semantic"
    assert (hits[0]["source"], hits[0]["trust"]) == ("agent", 0.8), "remember should record the model as the source"
    assert {h["user_id"] for h in hits} == {"ann"}, "the user filter let another user's memory through"
    fitted = (await _call(client, "recall", query="what does Ann eat?", user_id="ann", k=5, max_words=8))["results"]
    words = [len(h["content"].split()) for h in fitted]
    assert fitted[0]["id"] == diet and sum(words) <= 8 < sum(len(h["content"].split()) for h in hits), words
    assert hits[0]["score"] >= hits[-1]["score"]

    procedures = (await _call(client, "recall", query="how do I deploy?", user_id="ann", types=["procedural"]))[
        "results"
    ]
    assert [h["id"] for h in procedures] == [deploy["id"]]
    assert procedures[0]["attributes"]["steps"] == ["run the test suite", "make release"]

    music = await _call(client, "recall", query="jazz records", user_id="ann", k=1)
    assert music["results"][0]["id"] == jazz["id"] and music["results"][0]["source"] == "tool"
    trusted = {
        h["id"] for h in (await _call(client, "recall", query="jazz records", user_id="ann", min_trust=0.7))["results"]
    }
    assert jazz["id"] not in trusted and diet in trusted, "min_trust kept a tool-sourced memory (trust 0.6)"
    in_chat = await _call(client, "recall", query="Ann", user_id="ann", session_id="chat-1")
    assert [h["id"] for h in in_chat["results"]] == [move["id"]]
    long_ago = await _call(
        client, "recall", query="what does Ann eat?", user_id="ann", event_before="2001-01-01T00:00:00Z"
    )
    assert long_ago["results"] == [], "event_before let memories stored today through"
    assert "time zone" in await _error(client, "recall", query="what does Ann eat?", timezone="Nowhere/Special")

    first = await _call(client, "list_memories", user_id="ann", limit=3)
    assert len(first["memories"]) == 3 and first["next_cursor"]
    rest = await _call(client, "list_memories", user_id="ann", limit=3, cursor=first["next_cursor"])
    listed = {m["id"] for m in first["memories"] + rest["memories"]}
    assert listed == {diet, move["id"], deploy["id"], jazz["id"]} and rest["next_cursor"] is None

    worked = await _call(client, "feedback", memory_id=deploy["id"], outcome="success", note="released fine")
    assert worked["attributes"]["successes"] == 1
    assert "not_a_procedure" in await _error(client, "feedback", memory_id=diet, outcome="success")

    assert await _call(client, "forget", memory_id=diet) == {"id": diet, "deleted": "soft"}
    after = await _call(client, "recall", query="what does Ann eat?", user_id="ann")
    assert diet not in {h["id"] for h in after["results"]}
    deleted = await _call(client, "list_memories", user_id="ann", status="deleted")
    assert [m["id"] for m in deleted["memories"]] == [diet]

    assert "not_found" in await _error(client, "forget", memory_id="00000000-0000-4000-8000-000000000000")
    assert "validation_error" in await _error(client, "forget", memory_id="not-an-id")
    assert "type" in await _error(client, "remember", content="x", type="opinion", user_id="ann")
    assert "validation_error" in await _error(client, "remember", content="no owner", type="semantic")
    # The server is still serving after the errors.
    assert len((await _call(client, "list_memories", user_id="bob"))["memories"]) == 1


def test_stdio_tools_end_to_end(live_server, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Every tool through a real stdio server process, the key from LOCI_API_KEY; its log holds no memory content."""
    errlog = tmp_path / "stderr.log"

    async def session() -> None:
        env = _env(tmp_path / "home", LOCI_API_KEY=live_server.api_key)
        with errlog.open("w") as log:
            async with _stdio(["--url", live_server.url], env, log) as client:
                await _exercise(client)

    anyio.run(session)
    _assert_clean_stdout(caplog)
    assert "vegetarian" not in errlog.read_text()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the MCP server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the MCP server did not listen")


def test_streamable_http_and_sigterm(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--http serves the same tools at /mcp to clients presenting the forwarding key; SIGTERM ends the
    server cleanly (exit 0)."""
    port = free_port()
    args = ["mcp", "--http", "--port", str(port), "--url", live_server.url, "--api-key", live_server.api_key]
    args += ["--user-id", "carol"]
    with (tmp_path / "stderr.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], cwd=REPO, env=os.environ | _env(tmp_path), stderr=log
        )
    try:
        _wait_for_port(port, process)
        endpoint = f"http://127.0.0.1:{port}/mcp"

        async def session() -> None:
            headers = {"Authorization": f"Bearer {live_server.api_key}"}
            async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
                async with Client(
                    streamable_http_client(endpoint, http_client=http), read_timeout_seconds=60
                ) as client:
                    assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
                    stored = await _call(client, "remember", content="Carol takes the 7:40 train", type="episodic")
                    hits = (await _call(client, "recall", query="which train does Carol take?"))["results"]
                    assert hits[0]["id"] == stored["id"] and hits[0]["user_id"] == "carol", "--user-id was not applied"

        anyio.run(session)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": live_server.api_key}):
            refused = httpx.post(endpoint, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "unauthorized"
            assert live_server.api_key not in refused.text
        process.terminate()
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_http_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    """Over HTTP the key is what clients must present: no key, no server (exit 2, nothing listening)."""
    port = free_port()
    args = ["-m", "app.cli", "mcp", "--http", "--port", str(port), "--url", "http://127.0.0.1:9"]
    env = {k: v for k, v in (os.environ | _env(tmp_path)).items() if k != "LOCI_API_KEY"}
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--http needs an API key" in result.stderr


def test_in_process_service_zero_setup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Without --url the service runs inside the MCP process on a fresh embedded database, with the key
    made at first start, and stdout still carries nothing but the protocol."""
    home = Path(tempfile.mkdtemp(prefix="loci-mcp-"))  # short: the embedded server's socket path has a length limit
    errlog = tmp_path / "stderr.log"

    async def session() -> None:
        with errlog.open("w") as log:
            async with _stdio([], _env(home), log) as client:
                stored = await _call(
                    client, "remember", content="Dan prefers aisle seats", type="semantic", user_id="dan"
                )
                hits = (await _call(client, "recall", query="where does Dan like to sit?", user_id="dan"))["results"]
                assert hits[0]["id"] == stored["id"]

    try:
        anyio.run(session)
        _assert_clean_stdout(caplog)
        assert (home / "api-key").read_text().startswith("loci_")
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_local_api_key_sources(tmp_path: Path) -> None:
    """The in-process key: the bootstrap key first, then LOCI_HOME/api-key, else a clear NoApiKey."""
    settings = Settings(home=tmp_path, bootstrap_api_key=None)
    with pytest.raises(NoApiKey, match="--api-key"):
        local_api_key(settings)
    (tmp_path / "api-key").write_text("loci_from_file\n")
    assert local_api_key(settings) == "loci_from_file"
    assert local_api_key(settings.model_copy(update={"bootstrap_api_key": "loci_boot"})) == "loci_boot"
