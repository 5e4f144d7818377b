"""Memory routes over HTTP: success and failure cases, idempotency, pagination, history, hard delete."""

import threading
import time
import uuid
from collections.abc import Callable
from functools import partial

import numpy as np
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import event, select, text

from app.api.schemas import MemoryCreate, MemoryPatch
from app.db.models import Memory
from app.runtime import Runtime
from app.services import memory_store
from app.services.write_rules import MAX_TURN_LOCKS
from tests.conftest import wait_until, waiting_on


def _add(client: TestClient, **fields) -> str:  # type: ignore[no-untyped-def]
    body = {"content": "I like green tea", "user_id": "u1", **fields}
    response = client.post("/v1/memories", json=body)
    assert response.status_code == 201, response.text
    [memory_id] = response.json()["ids"]
    return memory_id


def test_create_and_get_round_trip(client: TestClient) -> None:
    memory_id = _add(
        client,
        type="semantic",
        session_id="s1",
        importance=0.9,
        metadata={"topic": "drinks"},
        attributes={"subject": "user", "predicate": "likes", "object": "green tea", "confidence": 0.8},
        event_at="2024-05-01T10:00:00Z",
    )
    memory = client.get(f"/v1/memories/{memory_id}").json()
    assert memory["content"] == "I like green tea"
    assert memory["type"] == "semantic"
    assert memory["attributes"]["object"] == "green tea"
    assert memory["metadata"] == {"topic": "drinks"}
    assert memory["importance"] == 0.9
    assert memory["status"] == "active"
    assert memory["embedding_status"] == "ready"
    assert memory["embedding_model"] == "all-MiniLM-L6-v2"
    assert memory["valid_from"].startswith("2024-05-01T10:00:00")


def test_batch_returns_ids_in_order(client: TestClient) -> None:
    contents = [f"memory number {i}" for i in range(5)]
    response = client.post("/v1/memories", json={"memories": [{"content": c, "user_id": "u1"} for c in contents]})
    assert response.status_code == 201
    ids = response.json()["ids"]
    assert [client.get(f"/v1/memories/{i}").json()["content"] for i in ids] == contents


def test_batch_is_all_or_nothing(client: TestClient) -> None:
    batch = [{"content": "fine", "user_id": "u1"}, {"content": "bad", "user_id": "u1", "type": "nonsense"}]
    response = client.post("/v1/memories", json={"memories": batch})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "memories.1.type" in response.json()["error"]["message"]
    assert client.get("/v1/memories", params={"user_id": "u1"}).json()["memories"] == []


def test_an_idempotency_key_sent_again_returns_the_original_id(client: TestClient) -> None:
    """A retry repeats its memory: the same fields, even written differently (an instant in another
    zone, a number with a trailing zero), get the first id and store nothing."""
    body = {"content": "Bo sails on Fridays", "user_id": "u1", "event_at": "2024-05-01T10:00:00Z", "importance": 0.5}
    first = client.post("/v1/memories", json={**body, "idempotency_key": "abc"}).json()["ids"]
    retry = {**body, "event_at": "2024-05-01T12:00:00+02:00", "importance": 0.50, "idempotency_key": "abc"}
    assert client.post("/v1/memories", json=retry).json()["ids"] == first
    twice = [{"content": "x", "user_id": "u1", "idempotency_key": "k2"}] * 2
    batch = client.post("/v1/memories", json={"memories": twice}).json()["ids"]
    assert batch[0] == batch[1]
    listed = client.get("/v1/memories", params={"user_id": "u1"}).json()["memories"]
    assert sorted(m["content"] for m in listed) == ["Bo sails on Fridays", "x"]


def test_an_idempotency_key_sent_with_another_memory_is_refused(client: TestClient, runtime: Runtime) -> None:
    """A key already used, sent with another memory, is a 422 naming the first memory, and stores
    nothing of the request: answering with the first id dropped the second memory unseen."""
    first = _add(client, content="Bo sails on Fridays", idempotency_key="abc")
    for other in ({"content": "Bo sails on Sundays"}, {"user_id": "u2"}, {"importance": 0.9}):
        body = {"content": "Bo sails on Fridays", "user_id": "u1", "idempotency_key": "abc", **other}
        batch = {"memories": [{"content": "a fine new memory", "user_id": "u1"}, body]}
        refused = client.post("/v1/memories", json=batch)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "idempotency_key_reused"
        assert error["details"] == {"index": 1, "idempotency_key": "abc", "id": first}
    x = {"content": "x", "user_id": "u1"}
    # the key twice in one batch, also where its first item repeats an item before it
    for twice in (
        [{**x, "idempotency_key": "k2"}, {**x, "content": "y", "idempotency_key": "k2"}],
        [x, {**x, "idempotency_key": "k2"}, {**x, "content": "y", "idempotency_key": "k2"}],
    ):
        refused = client.post("/v1/memories", json={"memories": twice})
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"] == {"index": len(twice) - 1, "idempotency_key": "k2", "id": None}
    listed = client.get("/v1/memories", params={"status": "all"}).json()["memories"]
    assert [m["id"] for m in listed] == [first]
    with runtime.sessions.begin() as session:  # written before migration 0010: its key is not compared
        session.execute(text("UPDATE memories SET idempotency_fingerprint = NULL WHERE id = :id"), {"id": first})
    assert _add(client, content="Bo sails on Sundays", idempotency_key="abc") == first


def _sent_while_held(
    client: TestClient,
    runtime: Runtime,
    held: list[MemoryCreate],
    body: dict,  # type: ignore[type-arg]
    patched: str | None = None,
) -> tuple[list[str], Response]:
    """Writes `held` in a transaction left open while `body` is posted (or patched into memory
    `patched`), until the request either waits for that transaction or is answered; then commits.
    The held memories' ids and the request's answer."""
    seed = _add(client, content="a memory of the tenant's")
    with runtime.sessions() as holder:
        tenant_id = holder.scalar(select(Memory.tenant_id).where(Memory.id == uuid.UUID(seed)))
        vectors = memory_store.embed_items(runtime.embedder, held)
        held_ids = memory_store.create_memories(holder, tenant_id, held, vectors, "test")
        holder_pid = holder.scalar(text("SELECT pg_backend_pid()"))
        answers: list[Response] = []
        path = "/v1/memories" if patched is None else f"/v1/memories/{patched}"
        request = partial(client.post if patched is None else client.patch, path, json=body)
        sender = threading.Thread(target=lambda: answers.append(request()))
        sender.start()
        wait_until(lambda: answers or waiting_on(runtime, holder_pid), "the post waited or was answered")
        holder.commit()
        sender.join(timeout=30)
    assert answers[0].status_code == (201 if patched is None else 200), answers[0].text
    return [str(i) for i in held_ids], answers[0]


def test_a_retry_racing_its_first_try_gets_the_first_ones_ids(client: TestClient, runtime: Runtime) -> None:
    """A retry sent while the first try's transaction is still open (a batch too large to take
    turns: MAX_TURN_LOCKS): its insert of the keys waits for that transaction, fails once it
    commits, and the retry, run again, answers with the first try's ids (it was a 500)."""
    batch = [
        {"content": f"Bo's note number {n}", "user_id": "bo", "idempotency_key": f"note-{n}"}
        for n in range(MAX_TURN_LOCKS + 1)
    ]
    stored_ids, answer = _sent_while_held(client, runtime, [MemoryCreate(**m) for m in batch], {"memories": batch})
    assert answer.json()["ids"] == stored_ids
    assert len(client.get("/v1/memories", params={"user_id": "bo", "limit": 200}).json()["memories"]) == len(batch)
    # the same batch under new keys reinforces what is stored: its keys go on the events, whose
    # unique index the retry's wait for the first try's transaction ends on
    again = [{**m, "idempotency_key": f"again-{n}"} for n, m in enumerate(batch)]
    first_ids, answer = _sent_while_held(client, runtime, [MemoryCreate(**m) for m in again], {"memories": again})
    assert answer.json()["ids"] == first_ids == stored_ids
    counts = {
        m["access_count"] for m in client.get("/v1/memories", params={"user_id": "bo", "limit": 200}).json()["memories"]
    }
    assert counts == {1}, "reinforced once, by the first try only"


def test_a_keyed_write_that_stored_no_memory_is_answered_the_same_when_sent_again(client: TestClient) -> None:
    """A write that reinforced a stored memory, or repeated an earlier item of its batch, stored
    no memory to keep its key: sent again, it reinforced the memory once more. Its event keeps it."""
    tea = _add(client, content="Ann likes green tea")

    def accesses() -> int:
        return client.get(f"/v1/memories/{tea}").json()["access_count"]

    for _ in range(2):
        assert _add(client, content="Ann likes green tea", idempotency_key="tea-again") == tea
        assert accesses() == 1
    repeat = {"content": "Ann likes sencha", "user_id": "u1"}
    batch = {
        "memories": [
            {**repeat, "idempotency_key": "b1"},
            {**repeat, "idempotency_key": "b2"},
            {**repeat, "idempotency_key": "b2"},
        ]
    }
    for _ in range(2):
        ids = client.post("/v1/memories", json=batch).json()["ids"]
        assert len(set(ids)) == 1 and client.get(f"/v1/memories/{ids[0]}").json()["access_count"] == 0
    ops = [e["op"] for e in client.get(f"/v1/memories/{ids[0]}/history").json()["events"]]
    assert sorted(ops) == ["create", "repeat"]
    refused = client.post("/v1/memories", json={**repeat, "content": "Ann likes coffee", "idempotency_key": "b2"})
    assert refused.status_code == 422 and refused.json()["error"]["details"]["id"] == ids[0]
    refused = client.post(
        "/v1/memories", json={**repeat, "content": "Ann likes coffee", "idempotency_key": "tea-again"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["details"]["id"] == tea


def _lives_in(city: str) -> dict[str, str]:
    return {"subject": "Ann", "predicate": "lives in", "object": city}


def test_concurrent_writes_of_one_fact_store_it_once(client: TestClient, runtime: Runtime) -> None:
    """Writes of one scope take turns, so a fact written while another transaction writes the same
    fact is found by the duplicate check and reinforces it (eight concurrent writes of one fact
    had stored six copies); and a fact written meanwhile that contradicts it supersedes it."""
    fact = {"type": "semantic", "content": "Ann is vegetarian", "user_id": "ann"}
    [held_id], answer = _sent_while_held(client, runtime, [MemoryCreate(**fact)], fact)
    assert answer.json()["ids"] == [held_id]
    lives = {"type": "semantic", "user_id": "ann"}
    oslo = MemoryCreate(
        **lives, content="Ann lives in Oslo", event_at="2024-01-01T00:00:00Z", attributes=_lives_in("Oslo")
    )
    rome = {
        **lives,
        "content": "Ann lives in Rome",
        "event_at": "2024-06-01T00:00:00Z",
        "attributes": _lives_in("Rome"),
    }
    [held_id], answer = _sent_while_held(client, runtime, [oslo], rome)
    statuses = {
        m["id"]: m["status"]
        for m in client.get("/v1/memories", params={"user_id": "ann", "status": "all"}).json()["memories"]
    }
    assert statuses[answer.json()["ids"][0]] == "active" and statuses[held_id] == "superseded", statuses


def test_an_edit_into_a_fact_written_meanwhile_takes_its_turn(client: TestClient, runtime: Runtime) -> None:
    """A PATCH that makes a memory state a fact waits for a write of that fact in flight, and then
    applies the conflict rule to it: neither saw the other uncommitted, and both stayed active."""
    likes_tea = {"type": "semantic", "user_id": "ann", "event_at": "2024-06-01T00:00:00Z"}
    tea = client.post(
        "/v1/memories",
        json={**likes_tea, "content": "Ann likes tea", "attributes": {"subject": "Ann", "predicate": "likes"}},
    ).json()["ids"][0]
    oslo = MemoryCreate(
        type="semantic",
        user_id="ann",
        content="Ann lives in Oslo",
        event_at="2024-01-01T00:00:00Z",
        attributes=_lives_in("Oslo"),
    )
    in_rome = {"content": "Ann lives in Rome", "attributes": _lives_in("Rome")}
    [held_id], answer = _sent_while_held(client, runtime, [oslo], in_rome, patched=tea)
    assert answer.json()["status"] == "active"
    assert client.get(f"/v1/memories/{held_id}").json()["superseded_by"] == tea


def test_a_batch_past_the_turn_locks_is_not_held_up(client: TestClient, runtime: Runtime) -> None:
    """A batch needing more than MAX_TURN_LOCKS locks takes none, so a transaction writing one of its
    memories does not hold it up (a lock of the whole tenant would have: behind a consolidation
    job, every write of the tenant); the price is the duplicate, as before turns were taken."""
    fact = {"type": "semantic", "content": "Bo is vegetarian", "user_id": "bo"}
    others = [{**fact, "content": f"Bo visited city number {n}"} for n in range(MAX_TURN_LOCKS)]
    [held_id], answer = _sent_while_held(client, runtime, [MemoryCreate(**fact)], {"memories": [fact, *others]})
    assert len(answer.json()["ids"]) == MAX_TURN_LOCKS + 1 and answer.json()["ids"][0] != held_id


def test_messages_become_episodic_memories(client: TestClient) -> None:
    response = client.post(
        "/v1/messages",
        json={
            "user_id": "u1",
            "session_id": "s9",
            "messages": [
                {
                    "role": "user",
                    "name": "Ann",
                    "content": "I adopted a cat named Miso",
                    "timestamp": "2023-05-08T13:56:00Z",
                },
                {"role": "assistant", "content": "Lovely! How old is Miso?"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    first, second = response.json()["ids"]
    memory = client.get(f"/v1/memories/{first}").json()
    assert memory["type"] == "episodic"
    assert memory["attributes"] == {"role": "user", "speaker": "Ann", "session": "s9"}
    assert memory["event_at"].startswith("2023-05-08T13:56:00")
    assert client.get(f"/v1/memories/{second}").json()["attributes"]["role"] == "assistant"


def test_validation_errors_name_the_field(client: TestClient) -> None:
    cases = [
        ({"content": "x", "user_id": "u1", "type": "dream"}, "type"),
        (
            {"content": "x", "user_id": "u1", "type": "procedural", "attributes": {"successes": -1}},
            "attributes.successes",
        ),
        ({"content": "x", "user_id": "u1", "attributes": {"colour": "red"}}, "attributes.colour"),
        ({"content": "", "user_id": "u1"}, "content"),
        ({"content": "x"}, "user_id or agent_id"),
        ({"content": "x", "user_id": "u1", "importance": 3}, "importance"),
        ({"content": "x", "user_id": "u1", "surprise": 1}, "surprise"),
    ]
    for body, field in cases:
        response = client.post("/v1/memories", json=body)
        assert response.status_code == 422, body
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert field in error["message"], (field, error["message"])


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/memories", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


def test_size_limits_are_413(client: TestClient) -> None:
    big = client.post("/v1/memories", json={"content": "x" * (32 * 1024 + 1), "user_id": "u1"})
    assert big.status_code == 413
    assert big.json()["error"]["code"] == "payload_too_large"
    meta = client.post("/v1/memories", json={"content": "x", "user_id": "u1", "metadata": {"v": "y" * 17000}})
    assert meta.status_code == 413
    batch = client.post("/v1/memories", json={"memories": [{"content": "x", "user_id": "u1"}] * 1001})
    assert batch.status_code == 413
    assert batch.json()["error"]["details"]["limit"] == 1000
    query = client.post("/v1/search", json={"query": "q" * 5000})
    assert query.status_code == 413
    assert client.get("/v1/memories", params={"user_id": "u1"}).json()["memories"] == []


def test_unknown_and_malformed_ids(client: TestClient) -> None:
    missing = client.get(f"/v1/memories/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert client.get("/v1/memories/not-a-uuid").status_code == 422
    assert client.patch(f"/v1/memories/{uuid.uuid4()}", json={"importance": 0.1}).status_code == 404
    assert client.delete(f"/v1/memories/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/v1/memories/{uuid.uuid4()}/history").status_code == 404


def test_patch_reembeds_and_records_history(client: TestClient) -> None:
    memory_id = _add(client)
    before = client.post("/v1/search", json={"query": "favourite programming language", "user_id": "u1"}).json()
    patched = client.patch(f"/v1/memories/{memory_id}", json={"content": "My favourite programming language is Rust"})
    assert patched.status_code == 200
    assert patched.json()["version"] == 2
    after = client.post("/v1/search", json={"query": "favourite programming language", "user_id": "u1"}).json()
    assert after["results"][0]["content"] == "My favourite programming language is Rust"
    assert after["results"][0]["scores"]["dense"] > (before["results"][0]["scores"]["dense"] or 0) + 0.2
    events = client.get(f"/v1/memories/{memory_id}/history").json()["events"]
    assert [e["op"] for e in events] == ["create", "update"]
    assert events[0]["after"]["status"] == "active" and events[0]["after"]["version"] == 1
    assert events[1]["before"]["content"] == "I like green tea"
    assert events[1]["after"]["content"] == "My favourite programming language is Rust"


def test_patch_of_the_speaker_reembeds(client: TestClient, runtime: Runtime) -> None:
    """A message is embedded with its speaker ("Alice: ..."): a new speaker is a new vector."""
    content = "I moved to Lisbon last spring."
    memory_id = _add(client, content=content, attributes={"speaker": "Alice"})
    assert client.patch(f"/v1/memories/{memory_id}", json={"attributes": {"speaker": "Bartholomew"}}).status_code == 200
    with runtime.sessions.begin() as session:
        stored = session.scalar(select(Memory.embedding).where(Memory.id == uuid.UUID(memory_id)))
    new, old = runtime.embedder.embed([f"Bartholomew: {content}", f"Alice: {content}"])
    assert float(np.dot(stored, new)) > 0.9999 > float(np.dot(stored, old))


def test_patch_failures(client: TestClient) -> None:
    memory_id = _add(client, type="procedural", attributes={"trigger": "deploy", "steps": ["build", "ship"]})
    assert client.patch(f"/v1/memories/{memory_id}", json={}).status_code == 422
    bad = client.patch(f"/v1/memories/{memory_id}", json={"attributes": {"steps": "not a list"}})
    assert bad.status_code == 422
    assert "attributes.steps" in bad.json()["error"]["message"]
    assert client.patch(f"/v1/memories/{memory_id}", json={"status": "archived"}).status_code == 422
    assert client.get(f"/v1/memories/{memory_id}").json()["version"] == 1


def test_soft_delete_hides_from_search_and_list(client: TestClient) -> None:
    memory_id = _add(client, content="The spare key is under the blue flowerpot")
    assert client.delete(f"/v1/memories/{memory_id}").json() == {"id": memory_id, "deleted": "soft"}
    assert client.get(f"/v1/memories/{memory_id}").json()["status"] == "deleted"
    results = client.post("/v1/search", json={"query": "where is the spare key", "user_id": "u1"}).json()["results"]
    assert memory_id not in [r["id"] for r in results]
    assert client.get("/v1/memories", params={"user_id": "u1"}).json()["memories"] == []
    deleted = client.get("/v1/memories", params={"user_id": "u1", "status": "deleted"}).json()["memories"]
    assert [m["id"] for m in deleted] == [memory_id]
    assert client.patch(f"/v1/memories/{memory_id}", json={"importance": 0.2}).status_code == 409
    assert [e["op"] for e in client.get(f"/v1/memories/{memory_id}/history").json()["events"]] == ["create", "delete"]


def test_hard_delete_leaves_no_rows(client: TestClient, runtime: Runtime) -> None:
    memory_id = _add(client, content="secret to forget")
    other = _add(client, content="keep me")
    client.patch(f"/v1/memories/{memory_id}", json={"importance": 0.1})
    with runtime.sessions.begin() as session:
        session.execute(
            text(
                "INSERT INTO memory_links (id, tenant_id, src_id, dst_id, kind) "
                "SELECT gen_random_uuid(), tenant_id, :a, :b, 'related' FROM memories WHERE id = :a"
            ),
            {"a": memory_id, "b": other},
        )
        session.execute(
            text(
                "INSERT INTO memory_keys (id, tenant_id, memory_id, kind, text) "
                "SELECT gen_random_uuid(), tenant_id, id, 'keyword', 'secret' FROM memories WHERE id = :a"
            ),
            {"a": memory_id},
        )
    assert client.delete(f"/v1/memories/{memory_id}", params={"hard": "true"}).json()["deleted"] == "hard"
    assert client.get(f"/v1/memories/{memory_id}").status_code == 404
    with runtime.sessions() as session:
        for table, column in [
            ("memories", "id"), ("memory_events", "memory_id"), ("memory_keys", "memory_id"),
            ("memory_links", "src_id"), ("memory_links", "dst_id"),
        ]:  # fmt: skip
            count = session.execute(
                text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": memory_id}
            ).scalar()
            assert count == 0, table
    assert client.get(f"/v1/memories/{other}").status_code == 200


def test_pagination_is_stable_and_complete(client: TestClient) -> None:
    ids = client.post(
        "/v1/memories", json={"memories": [{"content": f"note {i}", "user_id": "u1"} for i in range(7)]}
    ).json()["ids"]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"user_id": "u1", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/memories", params=params).json()
        seen += [m["id"] for m in page["memories"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        _add(client, user_id="u2", content="added between pages")  # another scope: must not disturb paging
    assert seen == ids
    assert pages == 3
    assert client.get("/v1/memories", params={"cursor": "!!bad"}).status_code == 422
    assert client.get("/v1/memories", params={"limit": 500}).status_code == 422


def test_list_filters(client: TestClient) -> None:
    _add(client, type="semantic", session_id="a")
    _add(client, type="episodic", session_id="b")
    _add(client, user_id="someone-else")
    assert len(client.get("/v1/memories", params={"user_id": "u1"}).json()["memories"]) == 2
    semantic = client.get("/v1/memories", params={"user_id": "u1", "type": "semantic"}).json()["memories"]
    assert [m["session_id"] for m in semantic] == ["a"]
    assert len(client.get("/v1/memories", params={"session_id": "b"}).json()["memories"]) == 1
    assert client.get("/v1/memories", params={"type": "dream"}).status_code == 422


def _behind_busy_model(
    runtime: Runtime, request: Callable[[], Response]
) -> tuple[Response, list[tuple[float, int]], float]:
    """Run the request while the model is busy with 400 filler texts: its response, the request
    thread's connection checkouts (+1) and checkins (-1) with their times, and when the filler finished."""
    pool_events: list[tuple[float, int]] = []

    def on(change: int) -> Callable[..., None]:
        def record(*_: object) -> None:
            if threading.current_thread().name.startswith("AnyIO worker"):  # the request's thread
                pool_events.append((time.monotonic(), change))

        return record

    filler = runtime.embedder.submit([f"Filler sentence number {i}, here to keep the model busy." for i in range(400)])
    filler_done: list[float] = []
    filler.add_done_callback(lambda _: filler_done.append(time.monotonic()))
    listeners = [("checkout", on(1)), ("checkin", on(-1))]
    for name, listener in listeners:
        event.listen(runtime.engine, name, listener)
    try:
        response = request()
    finally:
        for name, listener in listeners:
            event.remove(runtime.engine, name, listener)
    assert filler_done and pool_events, "the request neither waited for the model nor used the database"
    return response, pool_events, filler_done[0]


def test_a_write_waiting_for_the_model_holds_no_database_connection(client: TestClient, runtime: Runtime) -> None:
    """A write embeds before its transaction opens (memory_store.ItemVectors): queued behind other
    texts at the model, it must not hold one of the pool's connections meanwhile."""
    assert client.get(f"/v1/memories/{uuid.uuid4()}").status_code == 404  # the key is looked up and cached
    response, pool_events, filler_done = _behind_busy_model(
        runtime, lambda: client.post("/v1/memories", json={"content": "Queued behind the filler.", "user_id": "u1"})
    )
    assert response.status_code == 201, response.text
    assert min(at for at, change in pool_events if change == 1) > filler_done


def test_a_patch_waiting_for_the_model_holds_no_lock_or_connection(client: TestClient, runtime: Runtime) -> None:
    """A patch reads the memory, lets go of its connection, embeds the new text, then changes the row
    in a transaction of its own (memory_store.text_to_embed): it holds neither the row's lock nor a
    pooled connection while the model serves others."""
    memory_id = _add(client, content="The meeting is on Monday.")
    response, pool_events, filler_done = _behind_busy_model(
        runtime, lambda: client.patch(f"/v1/memories/{memory_id}", json={"content": "The meeting is on Tuesday."})
    )
    assert response.status_code == 200, response.text
    assert sum(change for at, change in pool_events if at < filler_done) == 0  # none held while it waited
    assert any(change == 1 and at > filler_done for at, change in pool_events)  # the update came after
    with runtime.sessions.begin() as session:
        stored = session.scalar(select(Memory.embedding).where(Memory.id == uuid.UUID(memory_id)))
    assert float(np.dot(stored, runtime.embedder.embed(["The meeting is on Tuesday."])[0])) > 0.9999


def test_a_patch_embeds_again_if_the_memory_changed_after_its_read(client: TestClient, runtime: Runtime) -> None:
    """The vector embedded ahead is used only for the text the locked row patches to."""
    memory_id = _add(client, content="I moved to Lisbon last spring.", attributes={"speaker": "Alice"})
    stale = memory_store.PreparedVector("Alice: a text read before another edit", np.ones(runtime.embedder.dim))
    patch = MemoryPatch(attributes={"speaker": "Bo"})
    with runtime.sessions.begin() as session:
        tenant_id = session.scalar(select(Memory.tenant_id).where(Memory.id == uuid.UUID(memory_id)))
        memory_store.update_memory(session, tenant_id, uuid.UUID(memory_id), patch, runtime.embedder, "test", stale)
    with runtime.sessions.begin() as session:
        stored = session.scalar(select(Memory.embedding).where(Memory.id == uuid.UUID(memory_id)))
    assert float(np.dot(stored, runtime.embedder.embed(["Bo: I moved to Lisbon last spring."])[0])) > 0.9999
