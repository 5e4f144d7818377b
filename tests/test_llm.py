"""The optional LLM path: JSON repair, re-asking on invalid replies, and consolidation using it.

The LLM is an external service; these tests stand up a small OpenAI-compatible endpoint on loopback
that replays scripted replies, so the client's real HTTP, retry and repair code runs end to end.
"""

import dataclasses
import json
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import select

from app.db.models import Memory, MemoryKey
from app.jobs.consolidate import consolidate
from app.llm import LLMClient, LLMConfig, LLMError, repair_json
from app.local_server import serve_in_thread
from app.runtime import Runtime


class Pair(BaseModel):
    a: int
    b: str


def test_repair_json_handles_what_models_do() -> None:
    assert repair_json('{"a": 1, "b": "x"}') == {"a": 1, "b": "x"}
    assert repair_json('```json\n{"a": 1, "b": "x",}\n```') == {"a": 1, "b": "x"}
    assert repair_json('Sure! Here it is: {"a": [1, 2,], "b": "x"} Hope that helps.') == {"a": [1, 2], "b": "x"}
    with pytest.raises(ValueError):
        repair_json("I cannot help with that.")


@pytest.fixture()
def scripted_llm() -> Iterator[tuple[str, list[str], list[dict]]]:  # type: ignore[type-arg]
    """An OpenAI-compatible endpoint answering with the queued replies, recording each request."""
    replies: list[str | int] = []
    requests: list[dict] = []  # type: ignore[type-arg]
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> JSONResponse:
        requests.append(await request.json())
        reply = replies.pop(0)
        if isinstance(reply, int):  # an HTTP status to fail with
            return JSONResponse({"error": "scripted failure"}, status_code=reply)
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": reply}}]})

    with serve_in_thread(app) as url:
        yield f"{url}/v1", replies, requests


def test_invalid_reply_is_asked_again_with_the_error(scripted_llm) -> None:  # type: ignore[no-untyped-def]
    url, replies, requests = scripted_llm
    replies += ['{"a": "not a number", "b": "x"}', 'Here: {"a": 2, "b": "y",}']
    client = LLMClient(LLMConfig(url, "test-model"))
    assert client.complete_json("give me a pair", Pair) == Pair(a=2, b="y")
    assert len(requests) == 2
    assert requests[0]["response_format"]["type"] == "json_schema"
    assert "not valid JSON for the schema" in requests[1]["messages"][-1]["content"]
    replies += ["nope", "still nope", "never"]
    with pytest.raises(LLMError):
        client.complete_json("give me a pair", Pair)
    client.close()


def test_chat_retries_server_errors_but_not_client_errors(scripted_llm) -> None:  # type: ignore[no-untyped-def]
    url, replies, requests = scripted_llm
    client = LLMClient(LLMConfig(url, "tiny", api_key="k1"))
    replies += [503, " 7 May 2023 \n"]
    assert client.chat([{"role": "user", "content": "When?"}]).strip() == "7 May 2023"
    assert len(requests) == 2 and requests[1]["model"] == "tiny" and requests[1]["temperature"] == 0
    replies.append(401)
    with pytest.raises(LLMError, match="401"):
        client.chat([{"role": "user", "content": "When?"}])
    assert len(requests) == 3
    client.close()


def test_consolidation_uses_the_llm_when_configured(scripted_llm, client: TestClient, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    url, replies, _ = scripted_llm
    messages = [
        {"role": "user", "name": "Ann", "content": "Guess what, the bakery on Rua Augusta hired me as head baker."},
        {"role": "assistant", "content": "Congratulations!"},
    ]
    client.post("/v1/messages", json={"user_id": "ann", "session_id": "s1", "messages": messages})
    facts = {
        "facts": [
            {"subject": "Ann", "predicate": "works as", "object": "head baker at the bakery on Rua Augusta", "turn": 0}
        ]
    }
    replies.append("```json\n" + json.dumps(facts) + "\n```")
    settings = runtime.settings.model_copy(update={"llm_base_url": url, "llm_model": "test-model"})
    with runtime.sessions() as session:
        tenant_id = session.scalar(
            select(Memory.tenant_id).where(Memory.user_id == "ann").order_by(Memory.created_at.desc())
        )
    counts = consolidate(dataclasses.replace(runtime, settings=settings), tenant_id, {"user_id": "ann"})
    assert counts["facts"] == 1
    semantic = client.get("/v1/memories", params={"user_id": "ann", "type": "semantic"}).json()["memories"]
    assert "Ann works as head baker at the bakery on Rua Augusta" in [m["content"] for m in semantic]


def test_an_llm_configured_later_writes_keys_for_episodes_consolidated_without_one(  # type: ignore[no-untyped-def]
    scripted_llm, client: TestClient, runtime: Runtime
) -> None:
    """The case keys wait for (LOCI_USE_MEMORY_KEYS unset): a scope consolidated without an LLM has no
    keys; once an LLM is configured, its next consolidation asks the LLM about those episodes and
    stores its facts as their keys, not as new memories."""
    url, replies, requests = scripted_llm
    messages = [{"role": "user", "name": "Bo", "content": "My sister Lina just opened a ceramics studio in Porto."}]
    client.post("/v1/messages", json={"user_id": "bo", "session_id": "s1", "messages": messages})
    with runtime.sessions() as session:
        tenant_id = session.scalar(select(Memory.tenant_id).where(Memory.user_id == "bo"))
    defaults = runtime.settings.model_copy(update={"use_memory_keys": None})
    assert consolidate(dataclasses.replace(runtime, settings=defaults), tenant_id, {"user_id": "bo"})["episodes"] == 1
    semantic = len(client.get("/v1/memories", params={"user_id": "bo", "type": "semantic"}).json()["memories"])

    facts = {"facts": [{"subject": "Lina", "predicate": "owns", "object": "a ceramics studio in Porto", "turn": 0}]}
    replies.append(json.dumps(facts))
    with_llm = defaults.model_copy(update={"llm_base_url": url, "llm_model": "test-model"})
    counts = consolidate(dataclasses.replace(runtime, settings=with_llm), tenant_id, {"user_id": "bo"})
    assert counts["episodes_keyed"] == 1 and len(requests) == 1, counts
    with runtime.sessions() as session:
        keys = session.scalars(select(MemoryKey.text).where(MemoryKey.tenant_id == tenant_id, MemoryKey.kind == "fact"))
        assert list(keys) == ["Lina owns a ceramics studio in Porto"]
    assert len(client.get("/v1/memories", params={"user_id": "bo", "type": "semantic"}).json()["memories"]) == semantic
