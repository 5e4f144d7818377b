"""The load benchmarks' HTTP client against a live server: what it reads must be what the service said."""

import asyncio
import uuid

import pytest

from benchmarks.http_client import TRANSPORT_ERRORS, KeptAliveConnection
from tests.conftest import LiveServer


async def _exchange(server: LiveServer) -> list[tuple[int, object]]:
    connection = KeptAliveConnection(server.url, server.api_key, timeout_s=30)
    stored = await connection.request(
        "POST", "/v1/memories", {"content": "The client reads this back.", "user_id": "u"}
    )
    memory_id = stored[1]["ids"][0]  # type: ignore[index]
    answers = [stored, await connection.request("GET", f"/v1/memories/{memory_id}")]
    answers.append(await connection.request("GET", f"/v1/memories/{uuid.uuid4()}"))
    await connection.close()  # the next request opens a new connection
    answers.append(await connection.request("POST", "/v1/search", {"query": "", "user_id": "u"}))
    await connection.close()
    return answers


def test_reads_statuses_and_bodies_over_one_connection(live_server: LiveServer) -> None:
    stored, fetched, missing, invalid = asyncio.run(_exchange(live_server))
    assert stored[0] == 201 and fetched[0] == 200
    assert fetched[1]["content"] == "The client reads this back."  # type: ignore[index]
    assert missing[0] == 404 and missing[1]["error"]["code"] == "not_found"  # type: ignore[index]
    assert invalid[0] == 422 and invalid[1]["error"]["code"] == "validation_error"  # type: ignore[index]


def test_a_refused_connection_raises_a_transport_error() -> None:
    connection = KeptAliveConnection("http://127.0.0.1:9", "no-key", timeout_s=5)  # port 9: nothing listens
    with pytest.raises(TRANSPORT_ERRORS):
        asyncio.run(connection.request("GET", "/healthz"))
