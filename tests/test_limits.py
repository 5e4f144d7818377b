"""Limits on what one caller can cost: per-key request rates, a per-request deadline, body sizes
(declared or chunked), values Postgres cannot store, pagination caps; and what an unexpected
error shows. Each runs on an app of its own with small limits over the session's runtime."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.ratelimit import RateLimiter, retry_after
from app.local_server import serve_in_thread
from app.storable import MAX_NESTING


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    assert limiter.acquire("b") == 0.0  # buckets are per key
    now[0] += 0.5
    assert limiter.acquire("a") == 0.0
    now[0] += 100
    assert [limiter.acquire("a") for _ in range(4)][-1] > 0  # refills up to the burst, not beyond
    assert RateLimiter(rate=0, burst=1).acquire("a") == 0.0  # 0 = unlimited
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"


def test_a_key_over_its_rate_gets_429(app_with, new_key) -> None:  # type: ignore[no-untyped-def]
    app = app_with(rate_limit_per_s=1, rate_limit_burst=3)
    fast, calm = new_key(), new_key()
    with TestClient(app) as client:
        statuses = [
            client.get("/v1/memories", headers={"Authorization": f"Bearer {fast}"}).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        limited = client.get("/v1/memories", headers={"Authorization": f"Bearer {fast}"})
        _error(limited, 429, "rate_limited")
        assert limited.headers["Retry-After"] == "1"
        assert client.get("/v1/memories", headers={"Authorization": f"Bearer {calm}"}).status_code == 200
        time.sleep(1.05)  # one token a second: one is back
        assert client.get("/v1/memories", headers={"Authorization": f"Bearer {fast}"}).status_code == 200


def test_a_request_past_its_deadline_gets_503(app_with, api_key: str) -> None:  # type: ignore[no-untyped-def]
    """Over real HTTP, so the abandoned handler finishes on a live event loop."""
    slow_batch = {"memories": [{"content": f"note {i} about a long day", "user_id": "u"} for i in range(60)]}
    with serve_in_thread(app_with(request_timeout_s=0.02)) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"}) as client:
            late = client.post("/v1/memories", json=slow_batch)
            _error(late, 503, "timeout")
            assert late.headers["Retry-After"] == "1"
            assert client.get("/healthz").status_code == 200  # the server itself is fine


def test_requests_past_the_concurrency_limit_wait_their_turn(app_with, api_key: str) -> None:  # type: ignore[no-untyped-def]
    """A write whose body is still arriving holds the only slot: a read waits for it, in order, while
    the health probe passes the gate. Over real HTTP, so the gate sits in the served app."""

    async def scenario(url: str) -> None:
        body_may_end = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b'{"content": "a note sent slowly", '
            await body_may_end.wait()
            yield b'"user_id": "gate"}'

        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            write = asyncio.create_task(client.post("/v1/memories", content=slow_body()))
            await asyncio.sleep(0.3)  # the write is in, holding the slot
            read = asyncio.create_task(client.get("/v1/memories", params={"user_id": "gate"}))
            assert (await client.get("/healthz")).status_code == 200
            await asyncio.sleep(0.5)
            assert not read.done()  # queued behind the write
            body_may_end.set()
            assert (await write).status_code == 201
            listed = await read
            assert listed.status_code == 200
            assert [m["content"] for m in listed.json()["memories"]] == ["a note sent slowly"]

    with serve_in_thread(app_with(max_concurrent_requests=1)) as url:
        asyncio.run(scenario(url))


def _chunks(size: int) -> Iterator[bytes]:
    body = b'{"content": "' + b"x" * size + b'", "user_id": "u"}'
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


def test_bodies_over_the_limit_are_refused_before_parsing(app_with, api_key: str) -> None:  # type: ignore[no-untyped-def]
    app = app_with(max_body_bytes=4000)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    with TestClient(app, headers=headers) as client:
        declared = client.post("/v1/memories", content=b"{" + b" " * 5000 + b"}")
        _error(declared, 413, "payload_too_large")
        for path in ("/v1/memories", "/v1/search"):  # chunked: no Content-Length, counted as it streams
            _error(client.post(path, content=_chunks(5000)), 413, "payload_too_large")
        assert client.post("/v1/memories", content=_chunks(500)).status_code == 201


def _lists(levels: int) -> str:
    return "[" * levels + "]" * levels


MESSAGE_AT = '{"user_id": "u", "session_id": "s", "messages": [{"role": "user", "content": "hi", "timestamp": "%s"}]}'


def test_values_postgres_cannot_store_are_422(client: TestClient) -> None:
    """NUL characters, unpaired surrogates, NaN, absurd nesting: refused up front, not a database 500."""
    bodies = [
        ("/v1/memories", '{"content": "a\\u0000b", "user_id": "u"}'),
        ("/v1/memories", '{"content": "ok", "user_id": "u", "metadata": {"k\\u0000": 1}}'),
        ("/v1/memories", '{"content": "\\ud800 lonely surrogate", "user_id": "u"}'),
        ("/v1/memories", '{"content": "ok", "user_id": "u", "metadata": {"x": NaN}}'),
        ("/v1/memories", '{"content": "ok", "user_id": "u", "metadata": ' + "[" * 5000 + "]" * 5000 + "}"),
        ("/v1/search", '{"query": "tea", "filters": {"x": Infinity}}'),
        # Nesting past MAX_NESTING, counted from the body's root; 600 levels were a RecursionError.
        ("/v1/memories", '{"content": "ok", "user_id": "u", "metadata": {"k": ' + _lists(MAX_NESTING - 1) + "}}"),
        ("/v1/memories", '{"content": "ok", "user_id": "u", "attributes": {"k": ' + _lists(600) + "}}"),
        ("/v1/search", '{"query": "tea", "filters": {"x": ' + _lists(600) + "}}"),
        ("/v1/messages", '{"user_id": "u", "session_id": "s", "messages": ' + _lists(600) + "}"),
        ("/v1/admin/keys", '{"permissions": ["read"], "name": ' + _lists(600) + "}"),
        ("/v1/jobs/consolidate", '{"user_id": ' + _lists(600) + "}"),
        ("/v1/messages", '{"user_id": "u", "session_id": "s", "messages": [{"role": "user", "content": "  "}]}'),
        ("/v1/jobs/forget", '{"user_id": "u", "session_id": "\\u0000"}'),
        # Times whose offset carries them out of the years 1 to 9999 in UTC, where Python and the
        # database's driver stop; a naive one read in the asker's zone too.
        ("/v1/memories", '{"content": "ok", "user_id": "u", "event_at": "0001-01-01T00:00:00+14:00"}'),
        ("/v1/memories", '{"content": "ok", "user_id": "u", "expires_at": "9999-12-31T23:59:59-12:00"}'),
        ("/v1/messages", MESSAGE_AT % "0001-01-01T05:00:00+06:00"),
        ("/v1/search", '{"query": "tea", "event_before": "9999-12-31T23:00:00-02:00"}'),
        ("/v1/search", '{"query": "tea", "asked_at": "0001-01-01T01:00:00", "timezone": "Asia/Tokyo"}'),
    ]
    for path, body in bodies:
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        _error(response, 422, "validation_error")
    memory_id = client.post("/v1/memories", json={"content": "ok", "user_id": "u"}).json()["ids"][0]
    response = client.patch(f"/v1/memories/{memory_id}", content='{"metadata": {"k": ' + _lists(300) + "}}")
    _error(response, 422, "validation_error")  # was stored, then a 500 from serialising the answer
    assert client.delete(f"/v1/memories/{memory_id}", params={"hard": "true"}).status_code == 200
    for path in ("/v1/memories?user_id=a%00b", "/v1/users/a%00b/footprint", "/v1/stats?user_id=%00"):
        _error(client.get(path), 422, "validation_error")
    assert client.get("/v1/memories", params={"user_id": "u"}).json()["memories"] == []
    for moment in ("0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z"):  # the calendar's own ends are fine
        response = client.post(
            "/v1/messages", content=MESSAGE_AT % moment, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text


def test_metadata_nested_to_the_limit_is_stored_read_back_and_found(client: TestClient) -> None:
    """The limit lies below what answering with a memory can serialise (pydantic stops at ~255)."""
    metadata = {"k": json.loads(_lists(MAX_NESTING - 2))}  # inside the body's object and metadata's own
    created = client.post("/v1/memories", json={"content": "deeply tagged", "user_id": "nest", "metadata": metadata})
    assert created.status_code == 201, created.text
    memory_id = created.json()["ids"][0]
    assert client.get(f"/v1/memories/{memory_id}").json()["metadata"] == metadata
    assert client.patch(f"/v1/memories/{memory_id}", json={"metadata": metadata}).status_code == 200
    found = client.post("/v1/search", json={"query": "deeply tagged", "user_id": "nest"}).json()["results"]
    assert [(hit["id"], hit["metadata"]) for hit in found] == [(memory_id, metadata)]


def test_pagination_and_result_counts_are_capped(client: TestClient) -> None:
    _error(client.get("/v1/memories", params={"limit": 201}), 422, "validation_error")
    _error(client.post("/v1/search", json={"query": "x", "k": 201}), 422, "validation_error")
    too_many = {"memories": [{"content": "x", "user_id": "u"}] * 1001}
    _error(client.post("/v1/memories", json=too_many), 413, "payload_too_large")


def test_wrong_methods_name_every_allowed_one(client: TestClient) -> None:
    response = client.request("PUT", "/v1/memories/3fa85f64-5717-4562-b3fc-2c963f66afa6")
    _error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}


def test_an_unexpected_error_is_a_500_body_and_its_message_stays_out_of_logs(app_with, service_logs) -> None:  # type: ignore[no-untyped-def]
    app = app_with()
    secret = "private memory " + "text"  # built at run time: the logged stack shows source lines

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(secret)

    with TestClient(app, raise_server_exceptions=False) as client:
        _error(client.get("/boom"), 500, "internal")
    logs = service_logs()
    assert "unhandled RuntimeError" in logs and "private memory text" not in logs
