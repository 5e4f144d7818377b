"""Retrieval through POST /v1/search: relevance on a small hand-written set, filters, scores."""

import time

from fastapi.testclient import TestClient

from app.runtime import Runtime

FACTS = [
    "Maria's daughter Sofia started violin lessons in September.",
    "The team decided to migrate the billing service from MySQL to Postgres.",
    "I am allergic to peanuts, so please never suggest satay.",
    "Our wifi password at the cabin is written on the fridge.",
    "Tom ran the Berlin marathon in 3 hours 41 minutes.",
    "The quarterly report is due on the last Friday of March.",
    "My sister lives in Porto and works as an architect.",
    "To restart the staging cluster, drain the nodes first, then reboot them one at a time.",
    "The dog needs his heartworm pill on the first day of every month.",
    "We painted the guest bedroom a pale sage green.",
]

QUESTIONS = {
    "what instrument does Sofia play?": 0,
    "which database are we moving billing to": 1,
    "food allergies": 2,
    "where can I find the cabin internet password": 3,
    "how fast was Tom's marathon": 4,
    "when is the quarterly report due?": 5,
    "what does my sister do for a living": 6,
    "how do I restart staging": 7,
    "when does the dog get his medication": 8,
    "what colour is the guest room": 9,
}


def _load(client: TestClient, user_id: str = "u1") -> list[str]:
    response = client.post("/v1/memories", json={"memories": [{"content": f, "user_id": user_id} for f in FACTS]})
    assert response.status_code == 201
    return response.json()["ids"]


def test_obviously_relevant_memory_ranks_first(client: TestClient) -> None:
    ids = _load(client)
    for question, expected in QUESTIONS.items():
        body = client.post("/v1/search", json={"query": question, "user_id": "u1", "k": 3}).json()
        assert body["results"][0]["id"] == ids[expected], question
        assert body["took_ms"] > 0


def test_results_carry_score_components(client: TestClient) -> None:
    _load(client)
    results = client.post("/v1/search", json={"query": "Tom marathon Berlin", "user_id": "u1", "k": 5}).json()[
        "results"
    ]
    top = results[0]
    assert top["scores"]["dense"] is not None and top["scores"]["lexical"] is not None
    assert top["score"] == top["scores"]["fused"]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert len(results) == 5


def test_scope_type_and_metadata_filters(client: TestClient) -> None:
    client.post(
        "/v1/memories",
        json={
            "memories": [
                {"content": "Paris trip booked for June", "user_id": "a", "metadata": {"topic": "travel"}},
                {
                    "content": "Paris hotel is near the Louvre",
                    "user_id": "a",
                    "type": "semantic",
                    "metadata": {"topic": "hotel"},
                },
                {"content": "Paris trip for the other user", "user_id": "b", "metadata": {"topic": "travel"}},
                {
                    "content": "Paris office visit",
                    "user_id": "a",
                    "session_id": "work",
                    "metadata": {"topic": "work", "n": 2},
                },
            ]
        },
    )

    def contents(**body) -> set[str]:  # type: ignore[no-untyped-def]
        response = client.post("/v1/search", json={"query": "Paris", "k": 10, **body})
        assert response.status_code == 200, response.text
        return {r["content"] for r in response.json()["results"]}

    assert contents(user_id="b") == {"Paris trip for the other user"}
    assert contents(user_id="a", types=["semantic"]) == {"Paris hotel is near the Louvre"}
    assert contents(user_id="a", session_id="work") == {"Paris office visit"}
    assert contents(user_id="a", filters={"topic": "travel"}) == {"Paris trip booked for June"}
    assert contents(filters={"topic": {"in": ["hotel", "work"]}}) == {
        "Paris hotel is near the Louvre",
        "Paris office visit",
    }
    assert contents(filters={"n": 2}) == {"Paris office visit"}
    assert len(contents()) == 4


def test_filtered_dense_search_still_returns_k(client: TestClient) -> None:
    """Iterative index scans: a selective scope must not starve the HNSW candidates."""
    memories = [{"content": f"ordinary note {i} about groceries", "user_id": "crowd"} for i in range(300)]
    memories += [{"content": f"rare note {i} about groceries", "user_id": "few"} for i in range(12)]
    assert client.post("/v1/memories", json={"memories": memories}).status_code == 201
    deadline = time.monotonic() + 120  # a batch this large is embedded by the worker after the response
    while client.get("/v1/stats").json()["pending_embeddings"] and time.monotonic() < deadline:
        time.sleep(0.1)
    results = client.post("/v1/search", json={"query": "zebra", "user_id": "few", "k": 10}).json()["results"]
    assert len(results) == 10
    assert all(r["user_id"] == "few" for r in results)


def test_expired_memories_are_hidden(client: TestClient) -> None:
    client.post(
        "/v1/memories",
        json={"memories": [
            {"content": "door code is 4512", "user_id": "u1", "expires_at": "2001-01-01T00:00:00Z"},
            {"content": "door code is 9931", "user_id": "u1", "expires_at": "2999-01-01T00:00:00Z"},
        ]},
    )  # fmt: skip
    results = client.post("/v1/search", json={"query": "door code", "user_id": "u1"}).json()["results"]
    assert [r["content"] for r in results] == ["door code is 9931"]


def test_as_of_filters_on_valid_time(client: TestClient) -> None:
    client.post(
        "/v1/memories",
        json={"memories": [
            {"content": "Ann lives in Oslo", "user_id": "u1", "type": "semantic", "event_at": "2020-01-01T00:00:00Z"},
            {"content": "Ann lives in Lisbon", "user_id": "u1", "type": "semantic", "event_at": "2024-01-01T00:00:00Z"},
        ]},
    )  # fmt: skip
    then = client.post(
        "/v1/search", json={"query": "where does Ann live", "user_id": "u1", "as_of": "2021-06-01T00:00:00Z"}
    )
    assert [r["content"] for r in then.json()["results"]] == ["Ann lives in Oslo"]


def test_event_window_keeps_memories_that_happened_in_it(client: TestClient) -> None:
    """By event time, or by stored time for a memory told without one; undated memories pass the
    BM25 index's own pre-filter, so only the SQL filter can keep the stored-now one out."""
    told = {"2024-03-02": "March", "2024-04-15": "April", "2024-05-20": "May"}
    memories = [
        {
            "content": f"Paid the plumber for the kitchen sink ({month})",
            "user_id": "pipes",
            "event_at": f"{day}T10:00:00Z",
        }
        for day, month in told.items()
    ]
    memories.append({"content": "Paid the plumber for the kitchen sink (undated)", "user_id": "pipes"})
    assert client.post("/v1/memories", json={"memories": memories}).status_code == 201

    def found(**window: str) -> list[str]:
        body = {"query": "plumber kitchen sink", "user_id": "pipes", "k": 10, **window}
        response = client.post("/v1/search", json=body)
        assert response.status_code == 200, response.text
        return sorted(r["content"].split("(")[1].rstrip(")") for r in response.json()["results"])

    assert found(event_after="2024-04-01T00:00:00Z", event_before="2024-05-01T00:00:00Z") == ["April"]
    assert found(event_before="2024-04-01") == ["March"]  # naive: UTC
    assert found(event_after="2024-05-01T00:00:00Z") == ["May", "undated"]  # stored today
    assert found() == ["April", "March", "May", "undated"]


def test_search_validation(client: TestClient) -> None:
    bad = [
        {"query": ""},
        {"query": "x", "k": 0},
        {"query": "x", "k": 201},
        {"query": "x", "types": ["dream"]},
        {"query": "x", "filters": {"a": {"nin": [1]}}},
        {"query": "x", "filters": {"a": [1, 2]}},
        {"query": "x", "as_of": "yesterday-ish"},
        {"query": "x", "event_after": "last spring"},
        {"query": "x", "event_after": "2024-05-01T00:00:00Z", "event_before": "2024-05-01T00:00:00Z"},
        {"query": "x", "event_after": "2024-05-01T02:00:00+02:00", "event_before": "2024-04-30T23:00:00"},
        {"k": 3},
        {"query": "x", "max_words": 0},
        {"query": "x", "max_words": "a few"},
    ]
    for body in bad:
        response = client.post("/v1/search", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_error"


def test_max_words_keeps_the_best_results_that_fit(client: TestClient, runtime: Runtime) -> None:
    """Of the k best, in rank order, those whose contents fit the budget together: the long first
    result that would overflow it is passed over and a shorter one after it still taken; only the
    results returned count as used."""
    texts = [
        "Tom ran the Rotterdam marathon in October in three hours and forty minutes, his personal best.",
        "Tom's marathon shoes were eaten by his dog Biscuit.",
        "Tom trains for the marathon every morning.",
        "Priya repotted her fig tree.",
    ]
    for text in texts:
        assert client.post("/v1/memories", json={"content": text, "user_id": "u-words"}).status_code == 201
    body = {"query": "How did Tom do in the Rotterdam marathon?", "user_id": "u-words", "k": 4}
    full = client.post("/v1/search", json=body).json()["results"]
    words = {r["id"]: len(r["content"].split()) for r in full}
    assert words[full[0]["id"]] == 16, [r["content"] for r in full]
    budget = 15
    expected, room = [], budget
    for result in full:
        if words[result["id"]] <= room:
            expected.append(result["id"])
            room -= words[result["id"]]
    runtime.access_counts.flush()
    fitted = client.post("/v1/search", json={**body, "max_words": budget}).json()["results"]
    assert [r["id"] for r in fitted] == expected and len(expected) >= 2
    runtime.access_counts.flush()
    uses = {i: client.get(f"/v1/memories/{i}").json()["access_count"] for i in words}
    assert uses == {i: 2 if i in expected else 1 for i in words}


def test_stopword_only_query_uses_dense(client: TestClient) -> None:
    _load(client)
    response = client.post("/v1/search", json={"query": "what is the", "user_id": "u1"})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 10


def test_each_hit_counts_as_a_use_and_shows_the_count_before_it(client: TestClient, runtime: Runtime) -> None:
    ids = _load(client, user_id="u-access")
    first = client.post("/v1/search", json={"query": "Tom marathon", "user_id": "u-access", "k": 3}).json()["results"]
    assert [r["access_count"] for r in first] == [0, 0, 0]  # the rows as found, before this use
    runtime.access_counts.flush()  # written in batches, off the request path
    second = client.post("/v1/search", json={"query": "Tom marathon", "user_id": "u-access", "k": 3}).json()["results"]
    assert [r["id"] for r in second] == [r["id"] for r in first]
    assert [r["access_count"] for r in second] == [1, 1, 1] and all(r["last_accessed_at"] for r in second)
    never_hit = set(ids) - {r["id"] for r in first}
    assert all(client.get(f"/v1/memories/{i}").json()["access_count"] == 0 for i in never_hit)
