"""Update on write: exact and near-duplicate reinforcement, and semantic facts superseding each other."""

from fastapi.testclient import TestClient
from sqlalchemy import text

from app.runtime import Runtime


def _fact(client: TestClient, city: str, when: str) -> str:
    response = client.post(
        "/v1/memories",
        json={
            "type": "semantic",
            "content": f"Ann lives in {city}",
            "user_id": "ann",
            "event_at": when,
            "attributes": {"subject": "Ann", "predicate": "lives in", "object": city},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["ids"][0]


def test_user_moves_city_old_fact_superseded_but_visible_as_of(client: TestClient, runtime: Runtime) -> None:
    old = _fact(client, "Oslo", "2020-03-01T00:00:00Z")
    new = _fact(client, "Lisbon", "2024-06-01T00:00:00Z")

    old_memory = client.get(f"/v1/memories/{old}").json()
    assert old_memory["status"] == "superseded"
    assert old_memory["superseded_by"] == new
    assert old_memory["valid_to"].startswith("2024-06-01")
    assert client.get(f"/v1/memories/{new}").json()["status"] == "active"

    def found(**extra) -> list[str]:  # type: ignore[no-untyped-def]
        body = {"query": "where does Ann live", "user_id": "ann", **extra}
        return [r["content"] for r in client.post("/v1/search", json=body).json()["results"]]

    assert found() == ["Ann lives in Lisbon"]
    assert set(found(include_superseded=True)) == {"Ann lives in Lisbon", "Ann lives in Oslo"}
    assert found(as_of="2021-01-01T00:00:00Z") == ["Ann lives in Oslo"]
    assert found(as_of="2025-01-01T00:00:00Z") == ["Ann lives in Lisbon"]

    ops = [e["op"] for e in client.get(f"/v1/memories/{old}/history").json()["events"]]
    assert ops == ["create", "supersede"]
    with runtime.sessions() as session:
        links = session.execute(
            text("SELECT src_id::text, dst_id::text, kind FROM memory_links WHERE dst_id = :old"), {"old": old}
        ).all()
    assert [tuple(link) for link in links] == [(new, old, "supersedes")]


def test_late_import_of_an_older_fact_is_stored_superseded(client: TestClient) -> None:
    new = _fact(client, "Lisbon", "2024-06-01T00:00:00Z")
    old = _fact(client, "Oslo", "2020-03-01T00:00:00Z")
    assert client.get(f"/v1/memories/{new}").json()["status"] == "active"
    late = client.get(f"/v1/memories/{old}").json()
    assert late["status"] == "superseded" and late["superseded_by"] == new


def _likes(client: TestClient, thing: str, when: str) -> str:
    attributes = {"subject": "Ann", "predicate": "likes", "object": thing}
    body = {"type": "semantic", "content": f"Ann likes {thing}", "user_id": "ann", "event_at": when}
    return client.post("/v1/memories", json={**body, "attributes": attributes}).json()["ids"][0]


def test_an_edit_that_makes_facts_contradict_supersedes_the_older(client: TestClient) -> None:
    """A PATCH applies the conflict rule as a write does (both facts had stayed active): the older
    of the two is superseded, whichever was edited."""
    oslo = _fact(client, "Oslo", "2020-03-01T00:00:00Z")
    tea = _likes(client, "tea", "2024-06-01T00:00:00Z")
    in_rome = {
        "content": "Ann lives in Rome",
        "attributes": {"subject": "Ann", "predicate": "lives in", "object": "Rome"},
    }
    edited = client.patch(f"/v1/memories/{tea}", json=in_rome)
    assert edited.status_code == 200 and edited.json()["status"] == "active", edited.text
    assert client.get(f"/v1/memories/{oslo}").json()["superseded_by"] == tea
    coffee = _likes(client, "coffee", "2021-01-01T00:00:00Z")  # older than Rome: edited, it is the one superseded
    in_porto = {"content": "Ann lives in Porto", "attributes": {**in_rome["attributes"], "object": "Porto"}}
    edited = client.patch(f"/v1/memories/{coffee}", json=in_porto).json()
    assert (edited["status"], edited["superseded_by"]) == ("superseded", tea)
    assert client.get(f"/v1/memories/{tea}").json()["status"] == "active"


def test_same_object_does_not_supersede(client: TestClient) -> None:
    first = _fact(client, "Oslo", "2020-03-01T00:00:00Z")
    response = client.post(
        "/v1/memories",
        json={
            "type": "semantic",
            "content": "Ann has lived in Oslo for years",
            "user_id": "ann",
            "attributes": {"subject": "ann", "predicate": "Lives in", "object": "oslo"},
        },
    )
    second = response.json()["ids"][0]
    assert client.get(f"/v1/memories/{first}").json()["status"] == "active"
    assert client.get(f"/v1/memories/{second}").json()["status"] == "active"


def test_repeated_memory_is_merged_not_duplicated(client: TestClient) -> None:
    body = {"type": "semantic", "content": "The user prefers green tea over coffee", "user_id": "u1", "importance": 0.4}
    first = client.post("/v1/memories", json=body).json()["ids"][0]
    again = client.post(
        "/v1/memories", json={**body, "content": "the user prefers  GREEN tea over coffee", "importance": 0.8}
    )
    assert again.json()["ids"] == [first]
    near = client.post("/v1/memories", json={**body, "content": "The user prefers green tea over coffee!!"})
    assert near.json()["ids"] == [first]
    listed = client.get("/v1/memories", params={"user_id": "u1"}).json()["memories"]
    assert len(listed) == 1
    assert listed[0]["access_count"] == 2
    assert listed[0]["importance"] == 0.8
    events = client.get(f"/v1/memories/{first}/history").json()["events"]
    assert [e["op"] for e in events] == ["create", "reinforce", "merge"]
    assert events[2]["after"]["similarity"] >= 0.95


def test_distinct_facts_are_not_merged(client: TestClient) -> None:
    ids = client.post(
        "/v1/memories",
        json={"memories": [
            {"type": "semantic", "content": "The user prefers green tea", "user_id": "u1"},
            {"type": "semantic", "content": "The user's sister is a pilot", "user_id": "u1"},
        ]},
    )  # fmt: skip
    assert len(set(ids.json()["ids"])) == 2


def test_episodes_repeat_only_as_exact_replays(client: TestClient) -> None:
    message = {"role": "user", "content": "ok, sounds good", "timestamp": "2024-01-01T10:00:00Z"}
    first = client.post("/v1/messages", json={"user_id": "u1", "session_id": "a", "messages": [message]}).json()["ids"]
    replay = client.post("/v1/messages", json={"user_id": "u1", "session_id": "a", "messages": [message]}).json()["ids"]
    other = client.post("/v1/messages", json={"user_id": "u1", "session_id": "b", "messages": [message]}).json()["ids"]
    later = {**message, "timestamp": "2024-01-02T10:00:00Z"}
    again = client.post("/v1/messages", json={"user_id": "u1", "session_id": "a", "messages": [later]}).json()["ids"]
    assert replay == first
    assert len({first[0], other[0], again[0]}) == 3
    in_batch = client.post(
        "/v1/messages", json={"user_id": "u1", "session_id": "c", "messages": [message, message]}
    ).json()["ids"]
    assert in_batch[0] == in_batch[1]
