"""Privacy: what is stored about one user (the footprint), and memory content kept out of logs."""

import threading
import time
import uuid

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import text

from app.runtime import Runtime
from tests.conftest import wait_until, waiting_on
from tests.test_lifecycle_jobs import CONVERSATION


def _add(client: TestClient, content: str, user_id: str) -> str:
    response = client.post("/v1/memories", json={"content": content, "user_id": user_id})
    assert response.status_code == 201, response.text
    return response.json()["ids"][0]


def _derive(runtime: Runtime, tenant_memory: str, other_memory: str) -> None:
    """A consolidation key on one memory and a link to another, as consolidation would write them."""
    with runtime.sessions.begin() as session:
        tenant_id = session.scalar(text("SELECT tenant_id FROM memories WHERE id = :id"), {"id": tenant_memory})
        session.execute(
            text(
                "INSERT INTO memory_keys (id, tenant_id, memory_id, kind, text) VALUES (:id, :t, :m, 'fact', 'likes tea')"
            ),
            {"id": uuid.uuid4(), "t": tenant_id, "m": tenant_memory},
        )
        session.execute(
            text("INSERT INTO memory_links (id, tenant_id, src_id, dst_id, kind) VALUES (:id, :t, :s, :d, 'related')"),
            {"id": uuid.uuid4(), "t": tenant_id, "s": other_memory, "d": tenant_memory},
        )


def test_footprint_counts_what_is_stored_about_a_user(app, client: TestClient, runtime: Runtime, new_key) -> None:  # type: ignore[no-untyped-def]
    first = _add(client, "Ana likes green tea", "ana")
    second = _add(client, "Ana moved to Porto", "ana")
    bob = _add(client, "Bob plays chess", "bob")
    client.patch(f"/v1/memories/{first}", json={"importance": 0.9})
    client.delete(f"/v1/memories/{second}")  # soft-deleted: the content is still stored, so it counts
    _derive(runtime, first, bob)
    with TestClient(app, headers={"Authorization": f"Bearer {new_key()}"}) as other_tenant:
        _add(other_tenant, "another tenant's Ana", "ana")
    events = sum(len(client.get(f"/v1/memories/{m}/history").json()["events"]) for m in (first, second))
    response = client.get("/v1/users/ana/footprint")
    assert response.status_code == 200
    assert response.json() == {
        "user_id": "ana",
        "counts": {"memories": 2, "memory_keys": 1, "memory_links": 1, "memory_events": events},
    }
    assert events >= 4  # two creates, an update, a delete
    assert client.get("/v1/users/nobody/footprint").json()["counts"] == {
        "memories": 0,
        "memory_keys": 0,
        "memory_links": 0,
        "memory_events": 0,
    }


def test_erasing_a_user_during_their_consolidation_leaves_nothing(client: TestClient, runtime: Runtime) -> None:
    """The consolidation's facts and summary, committed while the user's memories were being
    deleted, were left behind with their keys, links and events (the footprint not zero after an
    erasure that answered 200). The job is paused inside its transaction by a lock on one episode;
    the erasure starts, the episode is let go, and neither the job nor the erasure leaves a row."""
    ids = client.post("/v1/messages", json={"user_id": "gone", "session_id": "s", "messages": CONVERSATION})
    with runtime.engine.connect() as holder:
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        holder.execute(text("SELECT 1 FROM memories WHERE id = :id FOR UPDATE"), {"id": ids.json()["ids"][0]})
        assert client.post("/v1/jobs/consolidate", json={"user_id": "gone"}).status_code == 202
        wait_until(lambda: waiting_on(runtime, holder_pid), "the job waited for the held episode")
        erased: list[Response] = []
        eraser = threading.Thread(target=lambda: erased.append(client.delete("/v1/users/gone")))
        eraser.start()
        wait_until(lambda: waiting_on(runtime) >= 2, "the erasure waited too")
        holder.rollback()
        eraser.join(timeout=30)
    assert erased[0].status_code == 200, erased[0].text
    for _ in range(5):  # and stays so while the job finishes its other transactions
        assert set(client.get("/v1/users/gone/footprint").json()["counts"].values()) == {0}
        time.sleep(0.2)


def test_delete_on_a_footprint_is_refused_not_taken_for_another_user(client: TestClient) -> None:
    """User ids may hold slashes, so `DELETE /v1/users/ana/footprint` used to delete a user named
    "ana/footprint" (none) and answer 200 while Ana's memories stayed."""
    kept = _add(client, "Ana keeps a diary", "ana-fp")
    refused = client.delete("/v1/users/ana-fp/footprint")
    assert refused.status_code == 405, refused.text
    assert refused.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in refused.headers["allow"]
    assert client.get(f"/v1/memories/{kept}").status_code == 200
    # Other ids with slashes are still users of their own, and one ending in /footprint has a way out.
    _add(client, "a note", "ana-fp/notes")
    _add(client, "a team note", "team/footprint")
    assert client.delete("/v1/users/ana-fp/notes").json() == {"deleted": 1}
    assert client.delete("/v1/memories", params={"user_id": "team/footprint"}).json() == {"deleted": 1}
    assert client.get("/v1/users/ana-fp/footprint").json()["counts"]["memories"] == 1
    assert client.delete("/v1/users/ana-fp").json() == {"deleted": 1}
    assert client.delete("/v1/users/" + "u" * 201).status_code == 422


def test_logs_carry_ids_not_content(app_with, api_key: str, service_logs) -> None:  # type: ignore[no-untyped-def]
    content, query = "My bank PIN is 4417 and my sister is Maria", "what is the bank PIN"
    headers = {"Authorization": f"Bearer {api_key}"}
    with TestClient(app_with(), headers=headers) as client:
        memory_id = _add(client, content, "u")
        client.post("/v1/search", json={"query": query, "user_id": "u"})
    logs = service_logs()
    assert memory_id in logs  # the write and the search were logged...
    assert content not in logs and query not in logs and "4417" not in logs  # ...without what was said

    with TestClient(app_with(log_content=True), headers=headers) as client:
        _add(client, "Content logging is on for debugging", "u")
    assert "Content logging is on for debugging" in service_logs()
