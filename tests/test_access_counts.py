"""Uses counted by searches are written in batches: every use lands, in the right tenant, once."""

import uuid

from fastapi.testclient import TestClient

from app.jobs.access_counts import AccessCounts
from app.runtime import Runtime
from app.services.tenants import authenticate


def _memory(client: TestClient, memory_id: str) -> dict[str, object]:
    return client.get(f"/v1/memories/{memory_id}").json()


def test_uses_add_up_and_land_on_flush(client: TestClient, runtime: Runtime, api_key: str) -> None:
    ids = client.post(
        "/v1/memories", json={"memories": [{"content": f"counted note {i}", "user_id": "u-counts"} for i in range(3)]}
    ).json()["ids"]
    with runtime.sessions() as session:
        principal = authenticate(session, api_key)
    assert principal is not None
    counts = AccessCounts(runtime.sessions, flush_seconds=3600)  # only explicit flushes
    try:
        first, second, _ = (uuid.UUID(i) for i in ids)
        counts.record(principal.tenant_id, [first, second])
        counts.record(principal.tenant_id, [first])
        counts.record(uuid.uuid4(), [second])  # another tenant's id for the same memory: must not count
        counts.record(principal.tenant_id, [uuid.uuid4()])  # a memory deleted meanwhile: skipped
        assert [_memory(client, i)["access_count"] for i in ids] == [0, 0, 0]
        assert counts.flush() == 4
        after = [_memory(client, i) for i in ids]
        assert [m["access_count"] for m in after] == [2, 1, 0]
        assert after[0]["last_accessed_at"] and after[1]["last_accessed_at"] and after[2]["last_accessed_at"] is None
        assert counts.flush() == 0  # nothing twice
        assert [_memory(client, i)["access_count"] for i in ids] == [2, 1, 0]
    finally:
        counts.close()


def test_searches_count_their_hits_once_flushed(client: TestClient, runtime: Runtime) -> None:
    ids = client.post(
        "/v1/memories", json={"memories": [{"content": f"zebra crossing {i}", "user_id": "u-hits"} for i in range(2)]}
    ).json()["ids"]
    for _ in range(3):
        found = client.post("/v1/search", json={"query": "zebra crossing", "user_id": "u-hits", "k": 2}).json()
        assert {r["id"] for r in found["results"]} == set(ids)
    runtime.access_counts.flush()
    assert [_memory(client, i)["access_count"] for i in ids] == [3, 3]
