"""Large write batches return before embedding; the embedding worker catches up; nothing is lost."""

import time

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.jobs.embedding_worker import embed_pending
from app.runtime import Runtime
from benchmarks.corpus import conversation_texts


def _batch(count: int, user_id: str = "u") -> list[dict[str, str]]:
    return [{"content": t, "user_id": user_id} for t in conversation_texts(count, seed=21)]


def _stats(client: TestClient, **params: str) -> dict[str, int]:
    """The counts of the tenant's memories (pending_words is the process's vocabulary, not the tenant's)."""
    response = client.get("/v1/stats", params=params)
    assert response.status_code == 200
    return {name: count for name, count in response.json().items() if name != "pending_words"}


def test_large_batch_is_stored_pending_then_embedded(runtime: Runtime, client: TestClient, paused_worker) -> None:  # type: ignore[no-untyped-def]
    size = runtime.settings.async_embed_batch_min
    ids = client.post("/v1/memories", json={"memories": _batch(size)}).json()["ids"]
    assert _stats(client) == {"memories": size, "pending_embeddings": size}
    assert client.get(f"/v1/memories/{ids[0]}").json()["embedding_status"] == "pending"

    # Lexical search sees the memory at once; dense does not yet.
    content = conversation_texts(size, seed=21)[0]
    hit = client.post("/v1/search", json={"query": content, "user_id": "u", "k": 1}).json()["results"][0]
    assert hit["id"] == ids[0] and hit["scores"]["dense"] is None and hit["scores"]["lexical"] is not None

    # A worker killed mid-claim: its transaction rolls back and the rows stay pending for the next one.
    with runtime.engine.connect() as conn:
        claimed = conn.execute(
            text("SELECT id FROM memories WHERE embedding IS NULL ORDER BY seq LIMIT 10 FOR UPDATE SKIP LOCKED")
        ).all()
        assert len(claimed) == 10
        conn.rollback()
    assert _stats(client)["pending_embeddings"] == size

    while embed_pending(runtime.sessions, runtime.embedder, batch=25):
        pass
    assert _stats(client) == {"memories": size, "pending_embeddings": 0}
    assert client.get(f"/v1/memories/{ids[0]}").json()["embedding_status"] == "ready"
    hit = client.post("/v1/search", json={"query": content, "user_id": "u", "k": 1}).json()["results"][0]
    assert hit["id"] == ids[0] and hit["scores"]["dense"] > 0.99


def test_small_batch_is_embedded_before_the_response(runtime: Runtime, client: TestClient, paused_worker) -> None:  # type: ignore[no-untyped-def]
    ids = client.post("/v1/memories", json={"memories": _batch(runtime.settings.async_embed_batch_min - 1)}).json()
    assert _stats(client)["pending_embeddings"] == 0
    assert client.get(f"/v1/memories/{ids['ids'][0]}").json()["embedding_status"] == "ready"


def test_in_process_worker_embeds_a_deferred_batch(runtime: Runtime, client: TestClient) -> None:
    client.post("/v1/memories", json={"memories": _batch(100)})
    deadline = time.monotonic() + 120
    while _stats(client)["pending_embeddings"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _stats(client) == {"memories": 100, "pending_embeddings": 0}


def test_stats_are_per_tenant_and_per_user(client: TestClient, new_key, app) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/memories", json={"memories": _batch(3, "a") + _batch(2, "b")})
    assert _stats(client)["memories"] == 5
    assert _stats(client, user_id="a")["memories"] == 3
    with TestClient(app, headers={"Authorization": f"Bearer {new_key()}"}) as other:
        assert _stats(other) == {"memories": 0, "pending_embeddings": 0}


def test_stats_rejects_bad_input_and_anonymous_callers(client: TestClient, anon: TestClient) -> None:
    assert client.get("/v1/stats", params={"user_id": ""}).status_code == 422
    assert client.get("/v1/stats", params={"user_id": "x" * 201}).status_code == 422
    assert anon.get("/v1/stats").status_code == 401
