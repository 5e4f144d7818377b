"""The Python SDK (sdk/loci_client) against a real uvicorn server: no mocks, a fresh tenant per test."""

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from loci_client import (
    AsyncMemoryClient,
    AuthenticationError,
    ConflictError,
    ConnectionFailed,
    DeleteResult,
    Job,
    JobFailed,
    LociError,
    Memory,
    MemoryClient,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    SearchResponse,
    ValidationError,
    _core,
)
from loci_client._core import JobWait

from app.local_server import serve_in_thread

FIRST_PERSON_FACTS = [
    {"role": "user", "content": "I moved to Lisbon last spring."},
    {"role": "assistant", "content": "How are you finding it so far?"},
    {"role": "user", "content": "I adopted a cat named Miso."},
    {"role": "user", "content": "I work as a nurse at the city hospital."},
]


@pytest.fixture()
def memory(live_server) -> Iterator[MemoryClient]:  # type: ignore[no-untyped-def]
    with MemoryClient(live_server.url, live_server.api_key) as client:
        yield client


def _closed_port() -> int:
    """A loopback port nobody listens on: bound once by us, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_and_ready(memory: MemoryClient) -> None:
    assert memory.health()["status"] == "ok"
    assert memory.ready()["status"] == "ready"


def test_settings_from_env(live_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOCI_URL", live_server.url)
    monkeypatch.setenv("LOCI_API_KEY", live_server.api_key)
    with MemoryClient() as client:
        assert client.base_url == live_server.url
        assert client.list().memories == []


def test_add_get_round_trip(memory: MemoryClient) -> None:
    event_at = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    memory_id = memory.add(
        "Alice's favourite tea is jasmine",
        type="semantic",
        user_id="alice",
        session_id="s1",
        event_at=event_at,
        importance=0.9,
        metadata={"topic": "drinks"},
        attributes={"subject": "Alice", "predicate": "favourite tea", "object": "jasmine"},
        source="agent",
    )
    got = memory.get(memory_id)
    assert isinstance(got, Memory)
    assert (got.id, got.type, got.content) == (memory_id, "semantic", "Alice's favourite tea is jasmine")
    assert (got.user_id, got.agent_id, got.session_id) == ("alice", None, "s1")
    assert got.event_at == event_at
    assert got.importance == 0.9
    assert got.metadata == {"topic": "drinks"}
    assert got.attributes["object"] == "jasmine"
    assert (got.source, got.status, got.version) == ("agent", "active", 1)


def test_idempotency_key_returns_the_original_id(memory: MemoryClient) -> None:
    first = memory.add("Bob booked a flight to Oslo", user_id="bob", idempotency_key="flight-1")
    again = memory.add("Bob booked a flight to Oslo", user_id="bob", idempotency_key="flight-1")
    assert again == first
    with pytest.raises(ValidationError) as refused:  # the key sent with another memory
        memory.add("Bob booked a flight to Rome", user_id="bob", idempotency_key="flight-1")
    assert refused.value.code == "idempotency_key_reused" and refused.value.details["id"] == first
    assert [m.id for m in memory.iter_memories(user_id="bob")] == [first]


def test_add_many_returns_ids_in_input_order(memory: MemoryClient) -> None:
    contents = ["The red kite nests in the oak", "The heron fishes at dawn", "The owl hunts after dusk"]
    ids = memory.add_many([{"content": c, "user_id": "u1", "metadata": {"n": i}} for i, c in enumerate(contents)])
    assert len(ids) == len(set(ids)) == 3
    assert [memory.get(i).content for i in ids] == contents
    assert [memory.get(i).metadata["n"] for i in ids] == [0, 1, 2]


def test_add_many_is_all_or_nothing(memory: MemoryClient) -> None:
    with pytest.raises(ValidationError):
        memory.add_many([{"content": "a fine memory", "user_id": "u1"}, {"content": "", "user_id": "u1"}])
    assert memory.list(user_id="u1").memories == []


def test_add_messages(memory: MemoryClient) -> None:
    sent_at = datetime(2024, 2, 1, 9, 30, tzinfo=UTC)
    ids = memory.add_messages(
        [
            {"role": "user", "name": "Bob", "content": "I'm moving to Lisbon next month", "timestamp": sent_at},
            {"role": "assistant", "content": "Exciting! Do you need help finding an apartment?"},
        ],
        user_id="bob",
        session_id="chat-1",
    )
    assert len(ids) == 2
    first, second = (memory.get(i) for i in ids)
    assert (first.type, first.content, first.user_id, first.session_id) == (
        "episodic",
        "I'm moving to Lisbon next month",
        "bob",
        "chat-1",
    )
    assert first.event_at == sent_at
    assert first.attributes["role"] == "user" and first.attributes["speaker"] == "Bob"
    assert second.attributes["role"] == "assistant"


def test_search_counts_relative_periods_from_asked_at(memory: MemoryClient) -> None:
    """The same note told in two weeks: `asked_at` decides which one "last week" means."""
    for day in (3, 17):
        memory.add_messages(
            [{"role": "user", "content": "Booked the dentist", "timestamp": datetime(2024, 6, day, 9, tzinfo=UTC)}],
            user_id="dates",
            session_id=f"june-{day}",
        )
    for asked_at, wanted in ((datetime(2024, 6, 12, tzinfo=UTC), 3), ("2024-06-26T12:00:00Z", 17)):
        hits = memory.search("What did I book last week?", user_id="dates", k=2, asked_at=asked_at).results
        assert hits[0].event_at == datetime(2024, 6, wanted, 9, tzinfo=UTC)


def test_search_reads_the_days_of_a_period_in_the_askers_time_zone(memory: MemoryClient) -> None:
    """Asked at 10 p.m. on 3 June in New York, "yesterday" (with today) is the 2nd and 3rd there: the
    note told at 9 p.m. on the 3rd, New York time, is in it, the one told at 10 p.m. on the 1st is
    not. Read as UTC, the same naive moment makes it the other way round."""
    told = [datetime(2024, 6, 4, 1, tzinfo=UTC), datetime(2024, 6, 2, 2, tzinfo=UTC)]
    for number, moment in enumerate(told):
        memory.add_messages(
            [{"role": "user", "content": "Booked the dentist", "timestamp": moment}],
            user_id="zoned",
            session_id=f"told-{number}",
        )
    asked = "2024-06-03T22:00:00"
    in_new_york = memory.search(
        "What did I book yesterday?", user_id="zoned", k=2, asked_at=asked, timezone="America/New_York"
    )
    assert in_new_york.results[0].event_at == told[0]
    in_utc = memory.search("What did I book yesterday?", user_id="zoned", k=2, asked_at=asked)
    assert in_utc.results[0].event_at == told[1]


def test_search_fits_the_results_to_a_word_budget(memory: MemoryClient) -> None:
    memory.add_many(
        [
            {"content": "The user likes green tea", "user_id": "budget"},
            {"content": "The user drinks green tea every morning", "user_id": "budget"},
        ]
    )
    assert len(memory.search("green tea", user_id="budget", k=2).results) == 2
    fitted = memory.search("green tea", user_id="budget", k=2, max_words=6).results
    assert len(fitted) == 1 and len(fitted[0].content.split()) <= 6


def test_update_re_embeds_so_search_finds_the_new_content(memory: MemoryClient) -> None:
    memory.add_many(
        [
            {"content": "The user rides a red bicycle to work", "user_id": "u1"},
            {"content": "The user's sister lives in Toronto", "user_id": "u1"},
        ]
    )
    target = memory.add("The user is allergic to peanuts", user_id="u1", metadata={"kept": True})
    updated = memory.update(target, content="The user adopted a golden retriever puppy named Biscuit")
    assert updated.content == "The user adopted a golden retriever puppy named Biscuit"
    assert updated.version == 2
    assert updated.metadata == {"kept": True}  # fields not passed are left alone

    top = memory.search("What is the name of the user's dog?", user_id="u1").results[0]
    assert (top.id, top.content) == (target, updated.content)


def test_soft_and_hard_delete(memory: MemoryClient) -> None:
    soft = memory.add("The office wifi password is hunter2", user_id="u1")
    hard = memory.add("The spare key is under the flower pot", user_id="u1")

    result = memory.delete(soft)
    assert isinstance(result, DeleteResult)
    assert (result.id, result.deleted) == (soft, "soft")
    assert memory.get(soft).status == "deleted"
    assert soft not in [r.id for r in memory.search("wifi password", user_id="u1").results]

    assert memory.delete(hard, hard=True).deleted == "hard"
    with pytest.raises(NotFoundError):
        memory.get(hard)


def test_list_and_iter_memories_paginate(memory: MemoryClient) -> None:
    ids = memory.add_many([{"content": f"Pagination note number {i}", "user_id": "pager"} for i in range(7)])
    memory.add("A memory of somebody else", user_id="other")

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        page = memory.list(user_id="pager", limit=3, cursor=cursor)
        pages += 1
        assert len(page.memories) <= 3
        seen += [m.id for m in page.memories]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(ids)

    assert [m.id for m in memory.iter_memories(user_id="pager", limit=3)] == seen  # same order again
    assert len(list(memory.iter_memories(limit=3))) == 8  # no filter: every user of the tenant


def test_history_records_each_change(memory: MemoryClient) -> None:
    memory_id = memory.add("The user's gym is on Elm Street", user_id="u1")
    memory.update(memory_id, importance=0.2)
    memory.delete(memory_id)

    events = memory.history(memory_id)
    assert [e.op for e in events] == ["create", "update", "delete"]
    assert all(isinstance(e.at, datetime) for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)


def test_search_ranks_the_relevant_memory_first(memory: MemoryClient) -> None:
    facts = {
        "code": "The user prefers Python for data analysis",
        "pets": "The user's cat is called Miso",
        "travel": "The user went hiking in the Alps last summer",
        "food": "The user's favourite cuisine is Thai food",
        "work": "The weekly design review is on Thursday afternoons",
    }
    batch = [{"content": c, "user_id": "u1", "metadata": {"topic": t}} for t, c in facts.items()]
    ids = dict(zip(facts, memory.add_many(batch), strict=True))

    response = memory.search("Which programming language does the user like?", user_id="u1", k=3)
    assert isinstance(response, SearchResponse)
    assert response.took_ms >= 0
    assert 1 <= len(response.results) <= 3
    assert response.results[0].id == ids["code"]
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    assert isinstance(response.results[0].scores.fused, float)

    filtered = memory.search("what does the user like", user_id="u1", filters={"topic": "pets"})
    assert [r.id for r in filtered.results] == [ids["pets"]]


def test_bad_api_key_raises_authentication_error(live_server) -> None:  # type: ignore[no-untyped-def]
    with MemoryClient(live_server.url, "loci_not_a_real_key") as client:
        with pytest.raises(AuthenticationError) as caught:
            client.list()
    assert (caught.value.status_code, caught.value.code) == (401, "unauthorized")


def test_unknown_id_raises_not_found(memory: MemoryClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        memory.get(str(uuid.uuid4()))
    assert caught.value.code == "not_found"
    assert caught.value.status_code == 404
    assert isinstance(caught.value, LociError)


def test_unknown_type_raises_validation_error(memory: MemoryClient) -> None:
    with pytest.raises(ValidationError) as caught:
        memory.add("Something happened", type="nonsense", user_id="u1")
    assert caught.value.code == "validation_error"
    assert any("type" in detail["loc"] for detail in caught.value.details)


def test_oversize_content_raises_payload_too_large(memory: MemoryClient) -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        memory.add("x" * (33 * 1024), user_id="u1")
    assert (caught.value.status_code, caught.value.code) == (413, "payload_too_large")


def test_closed_port_raises_connection_failed_quickly() -> None:
    started = time.monotonic()
    with MemoryClient(f"http://127.0.0.1:{_closed_port()}", "any", retries=1, backoff=0.01) as client:
        with pytest.raises(ConnectionFailed) as caught:
            client.health()
    assert caught.value.status_code is None
    assert "2 attempt" in str(caught.value)
    assert time.monotonic() - started < 5


class _Recording(httpx.HTTPTransport):
    """A real transport that notes the status of each answer, to count what the client sent."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


class _AnswerLost(httpx.HTTPTransport):
    """A real transport that delivers the first `lose` requests of `method` to the server and then
    drops the answers, as a read timeout does: the server has acted, the client cannot know."""

    def __init__(self, method: str, lose: int = 1) -> None:
        super().__init__()
        self.method, self.lose = method, lose
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == self.method:
            self.sent.append(request)
            if len(self.sent) <= self.lose:
                response.close()
                raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_an_add_whose_answer_was_lost_is_sent_again_and_stored_once(live_server) -> None:  # type: ignore[no-untyped-def]
    """Every memory the client adds carries an idempotency key (a new one unless given), so after a
    read timeout it sends the add again, and the server answers with the memory it had stored."""
    lossy = _AnswerLost("POST", lose=2)
    with MemoryClient(live_server.url, live_server.api_key, retries=2, backoff=0.01, transport=lossy) as client:
        memory_id = client.add("Cleo's bike is a green Brompton", user_id="cleo")
        assert [m.id for m in client.iter_memories(user_id="cleo")] == [memory_id]
        keys = {json.loads(request.content)["idempotency_key"] for request in lossy.sent}
        assert len(lossy.sent) == 3 and len(keys) == 1 and keys.pop().startswith("sdk-")
        lossy.sent.clear()
        batch = [
            {"content": "Cleo rides to work", "user_id": "cleo", "idempotency_key": "mine"},
            {"content": "Cleo swims on Mondays", "user_id": "cleo"},
        ]
        ids = client.add_many(batch)
        assert len(lossy.sent) == 3 and len({r.content for r in lossy.sent}) == 1
        assert json.loads(lossy.sent[0].content)["memories"][0]["idempotency_key"] == "mine"
        assert {m.id for m in client.iter_memories(user_id="cleo")} == {memory_id, *ids}
        assert client.add("Cleo's bike is a green Brompton", user_id="cleo") == memory_id  # a new key: a repeat


def test_a_call_that_may_have_acted_is_not_sent_again(live_server) -> None:  # type: ignore[no-untyped-def]
    """An update whose answer was lost is raised, not sent again: the server may have applied it."""
    lossy = _AnswerLost("PATCH")
    with MemoryClient(live_server.url, live_server.api_key, retries=3, backoff=0.01, transport=lossy) as client:
        memory_id = client.add("Dara plays the oboe", user_id="dara")
        with pytest.raises(ConnectionFailed, match="after 1 attempt"):
            client.update(memory_id, importance=0.9)
        assert len(lossy.sent) == 1 and client.get(memory_id).importance == 0.9


def test_reads_and_adds_are_sent_again_when_the_server_was_away() -> None:
    """A 502, 503 or 504 may come after the server acted: only reads and keyed adds are sent again."""
    policy = _core.RetryPolicy(retries=2, backoff=0.01)
    timed_out = httpx.Response(503, json={"error": {"code": "timeout", "message": "m"}}, headers={"Retry-After": "1"})
    assert policy.wait_after(_core.add(content="x", user_id="u"), timed_out, 0) == 1
    assert policy.wait_after(_core.get("some-id"), httpx.Response(502), 1) == 0.02
    assert policy.wait_after(_core.update("some-id", importance=0.5), timed_out, 0) is None
    assert policy.wait_after(_core.search(query="q", user_id="u"), httpx.Response(504), 0) is None
    assert policy.wait_after(_core.get("some-id"), httpx.Response(500), 0) is None  # a bug: asking again will not help
    assert policy.wait_after(_core.get("some-id"), timed_out, 2) is None  # no retries left


def test_rate_limited_calls_are_sent_again_after_retry_after(app_with, api_key: str) -> None:  # type: ignore[no-untyped-def]
    """A 429 says nothing was done: the client waits the server's Retry-After and sends the call
    again; with no retries left it raises RateLimitError with the hint."""
    with serve_in_thread(app_with(rate_limit_per_s=1, rate_limit_burst=1)) as url:
        with MemoryClient(url, api_key, retries=0) as impatient:
            impatient.stats()
            with pytest.raises(RateLimitError) as refused:
                impatient.stats()
            assert refused.value.retry_after == 1
        recording = _Recording()
        with MemoryClient(url, api_key, retries=3, transport=recording) as patient:
            ids = [patient.add(f"note {i} of a busy day", user_id="paced") for i in range(3)]
            assert len(set(ids)) == 3 and patient.list(user_id="paced").memories
        assert 429 in recording.statuses and recording.statuses.count(201) == 3, recording.statuses

        async def add_twice() -> list[str]:
            async with AsyncMemoryClient(url, api_key, retries=3) as client:
                return [await client.add(f"async note {i}", user_id="paced") for i in range(2)]

        assert len(set(asyncio.run(add_twice()))) == 2


def test_async_client(live_server) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        async with AsyncMemoryClient(live_server.url, live_server.api_key) as memory:
            contents = [f"Async note {i} about sailing boats" for i in range(4)]
            ids = await asyncio.gather(*(memory.add(c, user_id="async") for c in contents))
            assert [(await memory.get(i)).content for i in ids] == contents

            target = await memory.add("The user's car is a blue Volvo estate", user_id="async")
            assert (await memory.update(target, importance=0.1)).importance == 0.1
            hits = await memory.search("what car does the user drive", user_id="async")
            assert hits.results[0].id == target

            listed = [m.id async for m in memory.iter_memories(user_id="async", limit=2)]
            assert sorted(listed) == sorted([*ids, target])
            assert [e.op for e in await memory.history(target)] == ["create", "update"]

            assert (await memory.delete(target, hard=True)).deleted == "hard"
            with pytest.raises(NotFoundError):
                await memory.get(target)
            assert (await memory.health())["status"] == "ok"

        async with AsyncMemoryClient(f"http://127.0.0.1:{_closed_port()}", retries=1, backoff=0.01) as offline:
            with pytest.raises(ConnectionFailed):
                await offline.health()

    asyncio.run(scenario())


def test_consolidate_and_wait_for_job(memory: MemoryClient) -> None:
    memory.add_messages(FIRST_PERSON_FACTS, user_id="ann", session_id="chat-1")
    job_id = memory.consolidate(user_id="ann")

    job = memory.wait_for_job(job_id, timeout=60)
    assert isinstance(job, Job)
    assert (job.job_id, job.kind, job.status, job.dry_run) == (job_id, "consolidate", "succeeded", False)
    assert job.scope == {"user_id": "ann"}
    assert job.counts["facts"] >= 1
    assert job.error is None and job.finished_at is not None and job.finished_at >= job.created_at
    assert memory.job(job_id) == job  # a finished job no longer changes
    assert memory.list(user_id="ann", type="semantic").memories  # the facts are stored memories


def test_forget_dry_run_reports_and_changes_nothing(memory: MemoryClient) -> None:
    expired = memory.add(
        "The user's parking permit is valid", user_id="u1", expires_at=datetime.now(UTC) - timedelta(days=1)
    )
    kept = memory.add("The user's sister lives in Toronto", user_id="u1")

    dry = memory.wait_for_job(memory.forget(user_id="u1", dry_run=True), timeout=60)
    assert (dry.kind, dry.status, dry.dry_run) == ("forget", "succeeded", True)
    assert (dry.counts["examined"], dry.counts["archived"], dry.counts["expired"]) == (2, 1, 1)
    assert {memory.get(i).status for i in (expired, kept)} == {"active"}

    done = memory.wait_for_job(memory.forget(user_id="u1"), timeout=60)
    assert (done.dry_run, done.counts["archived"]) == (False, 1)
    assert (memory.get(expired).status, memory.get(kept).status) == ("archived", "active")
    assert memory.restore(expired).status == "active"  # archiving is reversible


def test_feedback_counts_procedure_outcomes(memory: MemoryClient) -> None:
    procedure = memory.add(
        "To deploy: run the tests, tag the release, push the tag",
        type="procedural",
        user_id="u1",
        attributes={"trigger": "deploying", "steps": ["run the tests", "tag the release", "push the tag"]},
    )
    assert memory.feedback(procedure, "success").attributes["successes"] == 1
    after = memory.feedback(procedure, "failure", note="the tag push was rejected")
    assert (after.attributes["successes"], after.attributes["failures"]) == (1, 1)
    assert after.version == 3
    assert memory.history(procedure)[-1].reason == "the tag push was rejected"


def test_feedback_on_an_episode_raises_conflict(memory: MemoryClient) -> None:
    episode = memory.add("The user deployed on Friday", user_id="u1")
    with pytest.raises(ConflictError) as caught:
        memory.feedback(episode, "success")
    assert (caught.value.status_code, caught.value.code) == (409, "not_a_procedure")


def test_restore(memory: MemoryClient) -> None:
    memory_id = memory.add("The user's locker number is 42", user_id="u1")
    with pytest.raises(ConflictError) as caught:
        memory.restore(memory_id)  # active: nothing to restore
    assert (caught.value.status_code, caught.value.code) == (409, "not_restorable")

    memory.delete(memory_id)
    with pytest.raises(ConflictError) as caught:
        memory.update(memory_id, importance=0.1)
    assert caught.value.code == "memory_deleted"
    restored = memory.restore(memory_id)
    assert (restored.id, restored.status) == (memory_id, "active")


def test_delete_user_removes_every_memory_of_the_user(memory: MemoryClient) -> None:
    ids = memory.add_many([{"content": f"Note {i} about gardening", "user_id": "leaving"} for i in range(3)])
    other = memory.add("A memory of somebody else", user_id="staying")

    assert memory.delete_user("leaving") == 3
    assert memory.list(user_id="leaving").memories == []
    with pytest.raises(NotFoundError):
        memory.get(ids[0])
    assert memory.get(other).status == "active"
    assert memory.delete_user("leaving") == 0
    assert memory.delete_user(".") == 0  # a dot id is a user id, not a path segment that climbs a level


def test_delete_scope(memory: MemoryClient) -> None:
    memory.add_many([{"content": f"Chat line {i}", "user_id": "u1", "session_id": "old"} for i in range(2)])
    kept = memory.add("Chat line in a newer session", user_id="u1", session_id="new")

    assert memory.delete_scope(user_id="u1", session_id="old") == 2
    assert [m.id for m in memory.iter_memories(user_id="u1")] == [kept]
    with pytest.raises(ValidationError):
        memory.delete_scope()
    assert memory.get(kept).status == "active"


def test_unknown_job_raises_not_found(memory: MemoryClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        memory.job(str(uuid.uuid4()))
    assert (caught.value.status_code, caught.value.code) == (404, "not_found")


def test_wait_for_job_stops_on_failure_and_at_the_deadline(memory: MemoryClient) -> None:
    """The stop rules of wait_for_job, on states a healthy server will not produce on demand."""
    job = memory.wait_for_job(memory.forget(user_id="nobody", dry_run=True), timeout=60)
    running = job.model_copy(update={"status": "running"})
    failed = job.model_copy(update={"status": "failed", "error": "RuntimeError: disk full"})

    assert not JobWait(job.job_id, timeout=60, poll=0.25).finished(running)
    assert 0 < JobWait(job.job_id, timeout=60, poll=0.25).pause(running) <= 0.25
    with pytest.raises(TimeoutError, match=job.job_id):
        JobWait(job.job_id, timeout=0, poll=0.25).pause(running)
    with pytest.raises(JobFailed) as caught:
        JobWait(job.job_id, timeout=60, poll=0.25).finished(failed)
    assert (caught.value.job, caught.value.code) == (failed, "job_failed")
    assert isinstance(caught.value, LociError) and "disk full" in str(caught.value)
    with pytest.raises(ValueError):
        memory.wait_for_job(job.job_id, poll=0)


def test_read_only_key_raises_permission_denied(live_server) -> None:  # type: ignore[no-untyped-def]
    created = httpx.post(
        f"{live_server.url}/v1/admin/keys",
        json={"permissions": ["read"]},
        headers={"Authorization": f"Bearer {live_server.api_key}"},
    )
    created.raise_for_status()
    with MemoryClient(live_server.url, created.json()["key"]) as reader:
        assert reader.list().memories == []
        with pytest.raises(PermissionDeniedError) as caught:
            reader.delete_user("anyone")
    assert (caught.value.status_code, caught.value.code) == (403, "forbidden")


def test_async_consolidate_and_wait_for_job(live_server) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> Job:
        async with AsyncMemoryClient(live_server.url, live_server.api_key) as memory:
            await memory.add_messages(FIRST_PERSON_FACTS, user_id="ann", session_id="chat-1")
            job_id = await memory.consolidate(user_id="ann", session_id="chat-1")
            job = await memory.wait_for_job(job_id, timeout=60, poll=0.1)
            assert await memory.job(job_id) == job
            return job

    job = asyncio.run(scenario())
    assert (job.kind, job.status, job.scope) == ("consolidate", "succeeded", {"user_id": "ann", "session_id": "chat-1"})
    assert job.counts["facts"] >= 1


def test_stats_counts_memories_and_pending_embeddings(memory: MemoryClient) -> None:
    memory.add_many([{"content": f"note {i}", "user_id": "stats-user"} for i in range(3)])
    memory.add("elsewhere", user_id="someone-else")
    deadline = time.monotonic() + 60
    while (stats := memory.stats(user_id="stats-user")).pending_embeddings:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert stats.memories == 3
    assert memory.stats().memories == 4
