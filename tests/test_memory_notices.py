"""Writes made by other processes reach this process's in-process indexes and its embedding worker
when they commit (migration 0008's notices, app/memory_notices.py). "Another process" here is a connection of an engine the
service does not own, as a second replica, a separate worker or `loci import` would be."""

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text

from app.jobs.embedding_worker import EmbeddingWorker
from app.memory_notices import CHANNEL, EVERYTHING, OWN_LATE_EDIT, Notice, read_notice
from app.runtime import Runtime
from app.services.tenants import authenticate
from benchmarks.corpus import conversation_texts
from retrieval.scope_cache import EDIT_MARGIN
from tests.conftest import ServiceLauncher, await_notices, notices_heard

EDIT = text("UPDATE memories SET content = :content, updated_at = :at WHERE id = :id")  # the vector left as it was


@pytest.fixture()
def elsewhere(runtime: Runtime) -> Iterator[Engine]:
    """An engine of another process: same database, its own connections and name."""
    engine = create_engine(runtime.engine.url, connect_args={"application_name": "another-process"})
    yield engine
    engine.dispose()


def _memories(client: TestClient, user_id: str) -> list[str]:
    texts = [f"{line} ({number})" for number, line in enumerate(conversation_texts(40, seed=5))]
    response = client.post("/v1/memories", json={"memories": [{"content": t, "user_id": user_id} for t in texts]})
    assert response.status_code == 201, response.text
    client.post("/v1/search", json={"query": "warm the index", "user_id": user_id})  # the scope is held now
    return response.json()["ids"]


def _found(client: TestClient, query: str, user_id: str, memory_id: str) -> bool:
    """The memory ranks first, with its words matched: the BM25 index holds its current text."""
    top = client.post("/v1/search", json={"query": query, "user_id": user_id, "k": 1}).json()["results"][0]
    return bool(top["id"] == memory_id and top["scores"]["lexical"] > 0)


def _edit(connection: Connection, memory_id: str, content: str, at: datetime | None = None) -> None:
    connection.execute(EDIT, {"content": content, "at": at or datetime.now(UTC), "id": memory_id})


def _edited_elsewhere_and_found(
    runtime: Runtime, client: TestClient, elsewhere: Engine, memory_id: str, content: str, query: str, user_id: str
) -> bool:
    """Another process edits the memory; once its notice is heard here, the next search finds it by
    its new words."""
    heard = notices_heard(runtime)
    with elsewhere.begin() as connection:
        _edit(connection, memory_id, content)
    await_notices(runtime, heard + 1)
    return _found(client, query, user_id, memory_id)


@contextmanager
def _late_edit(
    runtime: Runtime,
    client: TestClient,
    late: Engine,
    elsewhere: Engine,
    ids: tuple[str, str, str],
    ran_for: timedelta = timedelta(seconds=1),
) -> Iterator[tuple[Connection, Connection]]:
    """Two transactions: the first (on `late`) edits `ids[1]` as if it had begun `ran_for` ago, the
    second (another process's) then edits `ids[2]` and commits, and a search of the user `ids[0]`
    reads it. Yields both; once the first commits, the scope's stamp is as it was (its
    `updated_at` is the older)."""
    user_id, late_id, read_id = ids
    heard = notices_heard(runtime)
    now = datetime.now(UTC)
    with late.connect() as first, elsewhere.connect() as second:
        _edit(first, late_id, "Zara keeps her passport in the cerulean folder.", now - ran_for)
        _edit(second, read_id, "Omar waters the ferns on Sundays.", now)
        second.commit()
        await_notices(runtime, heard + 1)
        assert _found(client, "Omar ferns", user_id, read_id)
        yield first, second


def test_an_edit_made_elsewhere_is_searched_at_once(runtime: Runtime, client: TestClient, elsewhere: Engine) -> None:
    """The scope was checked a moment ago, so without the notice the index waits for its recheck
    (LOCI_LEXICAL_RECHECK_SECONDS) and answers with the old text meanwhile."""
    ids = _memories(client, "replica")
    edit = "Zara keeps her passport in the cerulean folder."
    assert _edited_elsewhere_and_found(runtime, client, elsewhere, ids[3], edit, "Zara passport cerulean", "replica")


@pytest.mark.parametrize("ran_for_s", [1, 2 * EDIT_MARGIN.total_seconds()])
def test_an_edit_made_elsewhere_that_commits_late_is_not_missed(
    runtime: Runtime, client: TestClient, elsewhere: Engine, ran_for_s: float
) -> None:
    """No recheck can see the late edit (the stamp is unchanged); its notice does, and the refresh
    it causes reads back to the edit's time, even from a transaction that ran longer than the
    refreshes' margin (EDIT_MARGIN)."""
    user = f"late-elsewhere-{ran_for_s:.0f}"
    ids = _memories(client, user)
    heard = notices_heard(runtime)
    with _late_edit(runtime, client, elsewhere, elsewhere, (user, ids[3], ids[5]), timedelta(seconds=ran_for_s)) as (
        first,
        _,
    ):
        first.commit()
    await_notices(runtime, heard + 2)
    assert _found(client, "Zara passport cerulean", user, ids[3])


def test_an_edit_of_this_process_from_a_long_transaction_is_not_missed(
    runtime: Runtime, client: TestClient, elsewhere: Engine
) -> None:
    """This process's own edits reach its indexes when they commit, and the refresh reads back
    EDIT_MARGIN; one whose transaction set it longer ago than that, with another process's edit read
    meanwhile, is found through its own notice."""
    ids = _memories(client, "late-here")
    with _late_edit(runtime, client, runtime.engine, elsewhere, ("late-here", ids[3], ids[5]), 2 * EDIT_MARGIN) as (
        first,
        _,
    ):
        heard = notices_heard(runtime)
        first.commit()
    await_notices(runtime, heard + 1)
    assert _found(client, "Zara passport cerulean", "late-here", ids[3])


def test_the_listener_comes_back_after_its_connection_is_cut(
    runtime: Runtime, client: TestClient, elsewhere: Engine
) -> None:
    """A late edit, from a transaction that ran longer than the refreshes' margin, commits while the
    listener's connection is cut: it sends a notice nobody hears and leaves the stamp unchanged.
    The listener, once back, has every scope read back whole. It then hears later writes again."""
    ids = _memories(client, "cut")
    with _late_edit(runtime, client, elsewhere, elsewhere, ("cut", ids[3], ids[5]), 2 * EDIT_MARGIN) as (first, second):
        with runtime.engine.connect() as own:
            name = own.execute(text("SELECT current_setting('application_name')")).scalar_one()
        cut = second.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query = :listen AND application_name = :name"
            ),
            {"listen": f"LISTEN {CHANNEL}", "name": name},
        ).all()
        second.commit()
        assert cut == [(True,)]
        first.commit()  # the listener waits RETRY_SECONDS before listening again
    deadline = time.monotonic() + 15
    while not _found(client, "Zara passport cerulean", "cut", ids[3]):
        assert time.monotonic() < deadline, "the edit made while the listener was away never reached the index"
        time.sleep(0.2)
    edit = "Tomas repaints the lighthouse in spring."
    assert _edited_elsewhere_and_found(runtime, client, elsewhere, ids[9], edit, "Tomas lighthouse repaints", "cut")


def test_a_second_service_process_writes_and_this_one_searches_it_at_once(
    runtime: Runtime, client: TestClient, api_key: str, service_launcher: ServiceLauncher
) -> None:
    """Two replicas of the service on one database: a memory edited and one written through the
    other process are searched here with their words, without waiting for the recheck."""
    ids = _memories(client, "replicas")
    env = service_launcher.env(
        service_launcher.home(), LOCI_DATABASE_URL=runtime.engine.url.render_as_string(hide_password=False)
    )
    other = service_launcher.start(env)
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=other.url, headers=headers, timeout=30) as replica:
        client.post("/v1/search", json={"query": "check the scope now", "user_id": "replicas"})
        heard = notices_heard(runtime)
        edited = replica.patch(
            f"/v1/memories/{ids[3]}", json={"content": "Zara keeps her passport in a cerulean folder."}
        )
        assert edited.status_code == 200, edited.text
        written = replica.post(
            "/v1/memories", json={"content": "Omar waters the ferns on Sundays.", "user_id": "replicas"}
        )
        assert written.status_code == 201, written.text
    await_notices(runtime, heard + 2)
    assert _found(client, "Zara passport cerulean", "replicas", ids[3])
    assert _found(client, "Omar ferns Sundays", "replicas", written.json()["ids"][0])


def test_only_what_the_indexes_read_sends_a_notice(
    runtime: Runtime, client: TestClient, elsewhere: Engine, paused_worker: None
) -> None:
    """An insert, an edit, a vector dropped and a hard delete each send one notice naming the
    writer, the memory's tenant and its user, the edit with its new `updated_at`; a memory moved to
    another user one for each user. Use counts (updated by every search) and soft deletes (the
    search's SQL filters them) send none."""
    with elsewhere.connect() as listener:
        listener.execute(text(f"LISTEN {CHANNEL}"))
        listener.commit()
        [memory_id] = client.post("/v1/memories", json={"content": "a note", "user_id": "quiet"}).json()["ids"]
        with elsewhere.begin() as writer:
            writer.execute(
                text("UPDATE memories SET access_count = access_count + 1 WHERE id = :id"), {"id": memory_id}
            )
            writer.execute(
                text("UPDATE memories SET status = 'deleted', updated_at = now() WHERE id = :id"), {"id": memory_id}
            )
        edited_at = datetime.now(UTC) - timedelta(minutes=5)
        with elsewhere.begin() as writer:
            _edit(writer, memory_id, "an edited note", edited_at)
            writer.execute(text("UPDATE memories SET embedding = NULL WHERE id = :id"), {"id": memory_id})
        with elsewhere.begin() as writer:
            writer.execute(text("UPDATE memories SET user_id = 'loud' WHERE id = :id"), {"id": memory_id})
        with elsewhere.begin() as writer:
            writer.execute(text("DELETE FROM memories WHERE id = :id"), {"id": memory_id})
            writer.execute(text("SELECT pg_notify(:channel, 'end')"), {"channel": CHANNEL})
        payloads = []
        for sent in listener.connection.driver_connection.notifies(timeout=10):
            if sent.payload == "end":
                break
            payloads.append(json.loads(sent.payload))
    with runtime.sessions() as session:
        tenant = str(authenticate(session, client.headers["Authorization"].split()[1]).tenant_id)
    writers = [payload.pop("by") for payload in payloads]
    edited = [datetime.fromisoformat(payload.pop("edited")) for payload in payloads if "edited" in payload]
    assert edited == [edited_at], "only an edit that sets a new updated_at says when"
    sent = {"tenant": tenant, "user": "quiet", "pending": False}
    moved = {**sent, "user": "loud"}
    assert payloads == [sent, sent, {**sent, "pending": True}, sent, {**moved, "pending": True}, moved]
    assert writers[0].startswith("loci-") and writers[1:] == ["another-process"] * 5


def test_a_memory_left_without_its_vector_elsewhere_wakes_the_embedding_worker(
    runtime: Runtime, client: TestClient, elsewhere: Engine, paused_worker: None
) -> None:
    """As with `loci worker --embeddings` beside the API: the worker starts on a memory another
    process wrote without its vector at once, not at its next poll (an hour here)."""
    [memory_id] = client.post("/v1/memories", json={"content": "Pia grows chillies", "user_id": "p"}).json()["ids"]
    worker = EmbeddingWorker(runtime.sessions, runtime.embedder, batch=256, poll_seconds=3600)
    runtime.embedding_worker = worker
    worker.start()
    try:
        time.sleep(0.5)  # its first look for pending rows is done: it waits for its poll or a wake
        with elsewhere.begin() as connection:
            connection.execute(text("UPDATE memories SET embedding = NULL WHERE id = :id"), {"id": memory_id})
        deadline = time.monotonic() + 30
        while client.get(f"/v1/memories/{memory_id}").json()["embedding_status"] == "pending":
            assert time.monotonic() < deadline, "the memory written elsewhere was not embedded"
            time.sleep(0.05)
    finally:
        worker.close()
        runtime.embedding_worker = None


def test_a_notice_names_its_scopes_unless_it_is_this_process_own() -> None:
    """This process's own notices are skipped, but for an edit set longer ago than its indexes'
    refreshes read back (a long transaction)."""
    tenant, now = uuid.uuid4(), datetime.now(UTC)
    sent = {"by": "them", "tenant": str(tenant), "user": "ana", "pending": False}
    scopes = {(tenant, "ana"), (tenant, None)}

    def read(payload: dict[str, Any] | str) -> Notice | None:
        return read_notice(payload if isinstance(payload, str) else json.dumps(payload), "us", now)

    assert read(sent) == Notice(scopes, pending=False)
    assert read({**sent, "user": None, "pending": True}) == Notice({(tenant, None)}, True)
    assert read({**sent, "by": "us"}) is None
    just_now, late = now - OWN_LATE_EDIT / 2, now - OWN_LATE_EDIT * 2
    assert read({**sent, "edited": just_now.isoformat()}) == Notice(scopes, False, just_now)
    assert read({**sent, "by": "us", "edited": just_now.isoformat()}) is None
    assert read({**sent, "by": "us", "edited": late.isoformat()}) == Notice(scopes, False, late)
    too_long = {key: value for key, value in sent.items() if key != "user"}  # the trigger leaves it out
    assert read(too_long) == Notice(None, pending=False)
    assert read("not json") == EVERYTHING
    assert read({**sent, "tenant": "not a uuid"}) == EVERYTHING
    assert read({**sent, "edited": "not a time"}) == EVERYTHING
    assert read({"by": "them"}) == EVERYTHING
