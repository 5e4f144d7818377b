"""The in-process BM25 index: exact BM25, appends and edits equal a rebuild, filters hold."""

import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from types import SimpleNamespace

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.orm import sessionmaker

from app.api.schemas import MemoryCreate
from app.db.tenancy import confined_session
from app.jobs.embedding_worker import embed_pending
from app.runtime import Runtime
from app.services.memory_store import create_memories, embed_items
from app.services.tenants import authenticate
from app.vector_changes import deliver_inserts
from benchmarks.corpus import conversation_texts
from retrieval import SearchQuery
from retrieval.lexical_index import (
    SAMPLE_FOR_TOP,
    LexicalIndexes,
    LexicalScores,
    ScopeLexicon,
    _top_positions,
    _window_tf_by_neighbours,
    _window_tf_by_runs,
)
from retrieval.tokens import tokenize
from tests.conftest import threads_running


def _tenant(runtime: Runtime, client: TestClient):  # type: ignore[no-untyped-def]
    with runtime.sessions() as session:
        return authenticate(session, client.headers["Authorization"].split()[1]).tenant_id


def _scores(runtime: Runtime, indexes: LexicalIndexes, tenant_id, text: str, **filters) -> LexicalScores:  # type: ignore[no-untyped-def]
    query = SearchQuery(tenant_id=tenant_id, text=text, vector=np.zeros(1), user_id="u", **filters)
    with runtime.sessions.begin() as session:
        scores = indexes.scores(session, query)
    assert scores is not None
    return scores


def _messages(client: TestClient, session_id: str, turns: list[tuple[str, str]]) -> list[str]:
    body = {
        "user_id": "u",
        "session_id": session_id,
        "messages": [{"role": "user", "name": name, "content": content} for name, content in turns],
    }
    response = client.post("/v1/messages", json=body)
    assert response.status_code == 201, response.text
    return response.json()["ids"]


def test_content_view_is_okapi_bm25_with_the_speaker(runtime: Runtime, client: TestClient) -> None:
    docs = [("Ana", "I adopted a greyhound"), ("Ben", "the weather is grey"), ("Ana", "lunch was fine")]
    ids = _messages(client, "s1", docs)
    scores = _scores(runtime, LexicalIndexes(0, 10_000, 4, 600), _tenant(runtime, client), "Ana greyhound")
    # By hand: N = 3 documents of 3, 3 and 3 tokens (speaker, then the words that are not stop words).
    tokens = [tokenize(f"{name}: {text}") for name, text in docs]
    average = sum(map(len, tokens)) / 3

    def bm25(doc: list[str], term: str) -> float:
        df = sum(term in t for t in tokens)
        tf = doc.count(term)
        idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
        return idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(doc) / average))

    expected = [sum(bm25(doc, term) for term in tokenize("Ana greyhound")) for doc in tokens]
    position = [scores.ids.index(i) for i in map(type(scores.ids[0]), ids)]
    assert np.allclose(scores.views["content"][position], expected)
    assert scores.top("content", 5)[0] == scores.ids[position[0]]
    # Window 0: the context view is the content view.
    assert np.allclose(scores.views["context"], scores.views["content"])


def test_context_view_reaches_a_reply_through_its_neighbours(runtime: Runtime, client: TestClient) -> None:
    ids = _messages(
        client,
        "s1",
        [("Ana", "Did you finish the pottery course?"), ("Ben", "Yes, last Friday!"), ("Ana", "Congrats")],
    )
    _messages(client, "s2", [("Ben", "Groceries are expensive"), ("Ana", "Agreed")])
    scores = _scores(
        runtime, LexicalIndexes(1, 10_000, 4, 600), _tenant(runtime, client), "When did Ben finish pottery?"
    )
    reply = scores.ids.index(type(scores.ids[0])(ids[1]))
    content, context = scores.views["content"][reply], scores.views["context"][reply]
    assert context > content > 0  # "Ben" alone in its own text, "pottery" and "finish" from the question before it
    # Sessions do not leak into each other's windows.
    other = [i for i, memory_id in enumerate(scores.ids) if str(memory_id) not in ids]
    assert np.all(scores.views["context"][other] < scores.views["context"][reply])


def test_appends_and_edits_equal_a_rebuild(runtime: Runtime, client: TestClient) -> None:
    tenant_id = _tenant(runtime, client)
    indexes = LexicalIndexes(2, 10_000, 4, 600)
    _messages(client, "s1", [("Ana", "I play the oboe"), ("Ben", "Since when?"), ("Ana", "Since school")])
    first = _scores(runtime, indexes, tenant_id, "oboe school")
    indexes.changed()
    more = _messages(client, "s1", [("Ben", "Do you still play the oboe?"), ("Ana", "Every Sunday at school")])
    appended = _scores(runtime, indexes, tenant_id, "oboe school")
    fresh = _scores(runtime, LexicalIndexes(2, 10_000, 4, 600), tenant_id, "oboe school")
    assert len(appended.ids) == len(first.ids) + 2 == len(fresh.ids)
    assert appended.ids == fresh.ids
    assert np.allclose(appended.views["content"], fresh.views["content"]) and np.allclose(
        appended.views["context"], fresh.views["context"]
    )

    assert (
        client.patch(f"/v1/memories/{more[0]}", json={"content": "Do you still play the bassoon?"}).status_code == 200
    )
    indexes.changed()
    edited = _scores(runtime, indexes, tenant_id, "bassoon oboe")
    rebuilt = _scores(runtime, LexicalIndexes(2, 10_000, 4, 600), tenant_id, "bassoon oboe")
    assert len(edited.ids) == len(rebuilt.ids) + 1  # appended again, not rebuilt: its old position stays
    ids = rebuilt.ids
    assert all(np.allclose(edited.of(ids)[view], rebuilt.views[view]) for view in rebuilt.views)
    assert str_ids(_scores(runtime, indexes, tenant_id, "bassoon").top("content", 5)) == [more[0]]

    # A second edit would leave 2 of 7 positions superseded, beyond MAX_SUPERSEDED_SHARE: rebuilt.
    assert client.patch(f"/v1/memories/{more[1]}", json={"content": "Every Monday"}).status_code == 200
    indexes.changed()
    assert len(_scores(runtime, indexes, tenant_id, "bassoon").ids) == len(rebuilt.ids)


def test_a_write_that_commits_late_is_appended_not_rebuilt(runtime: Runtime, client: TestClient) -> None:
    """A write that takes its seq before another but commits after it is missed by the refresh's
    seq watermark; the index finds it among the scope's recent ids instead of rebuilding."""
    tenant_id = _tenant(runtime, client)
    indexes = LexicalIndexes(0, 10_000, 4, 600)
    _messages(client, "s1", [("Ana", "I play the oboe"), ("Ben", "Since when?")])
    first = _scores(runtime, indexes, tenant_id, "oboe")
    item = MemoryCreate(content="Ana tunes her harpsichord", user_id="u")
    with confined_session(runtime.sessions, tenant_id) as late:
        [late_id] = create_memories(
            late, tenant_id, [item], embed_items(runtime.embedder, [item]), "test"
        )  # seq taken, not committed
        _messages(client, "s1", [("Ben", "Do you still play the oboe?")])  # a later seq, committed first
        indexes.changed()
        assert len(_scores(runtime, indexes, tenant_id, "oboe").ids) == len(first.ids) + 1
        late.commit()
    lexicon = indexes._cache._entries[(tenant_id, "u")].built
    indexes.changed()
    found = _scores(runtime, indexes, tenant_id, "harpsichord")
    assert indexes._cache._entries[(tenant_id, "u")].built is lexicon  # appended to, not built anew
    assert found.top("content", 5) == [late_id]
    fresh = _scores(runtime, LexicalIndexes(0, 10_000, 4, 600), tenant_id, "harpsichord")
    assert sorted(map(str, found.ids)) == sorted(map(str, fresh.ids))


def test_an_edit_that_commits_after_a_later_one_is_not_missed(runtime: Runtime, client: TestClient) -> None:
    """`updated_at` is set before a transaction commits: an edit committing after a later edit has
    been read falls below the index's watermark and leaves the scope's stamp as it was. The index
    still takes it: this process's change refreshes the scope, and the refresh reads back a margin."""
    texts = [f"{text_} ({number})" for number, text_ in enumerate(conversation_texts(60, seed=3))]
    ids = client.post("/v1/memories", json={"memories": [{"content": t, "user_id": "late"} for t in texts]}).json()
    ids = ids["ids"]
    client.post("/v1/search", json={"query": "warm the index", "user_id": "late"})
    tenant_id = _tenant(runtime, client)
    edit = text("UPDATE memories SET content = :c, updated_at = :at WHERE id = :id")  # the vector left as it was
    earlier = datetime.now(UTC)
    with confined_session(runtime.sessions, tenant_id) as first:
        first.execute(edit, {"c": "Zara keeps her passport in the cerulean folder.", "at": earlier, "id": ids[3]})
        with confined_session(runtime.sessions, tenant_id) as second:
            later = earlier + timedelta(seconds=1)
            second.execute(edit, {"c": "Omar waters the ferns on Sundays.", "at": later, "id": ids[5]})
            second.commit()
        found = client.post("/v1/search", json={"query": "Omar ferns", "user_id": "late", "k": 1}).json()
        assert found["results"][0]["id"] == ids[5]
        first.commit()
    found = client.post("/v1/search", json={"query": "Zara passport cerulean", "user_id": "late", "k": 1}).json()
    assert found["results"][0]["id"] == ids[3] and found["results"][0]["scores"]["lexical"] > 0


def test_search_never_returns_what_the_filter_excludes(runtime: Runtime, client: TestClient) -> None:
    ids = _messages(client, "s1", [("Ana", "My kayak is red"), ("Ben", "My kayak is blue")])
    fact = client.post("/v1/memories", json={"type": "semantic", "content": "Ana owns a red kayak", "user_id": "u"})
    assert fact.status_code == 201
    [fact_id] = fact.json()["ids"]
    assert client.delete(f"/v1/memories/{ids[0]}", params={"hard": "true"}).status_code == 200
    results = client.post("/v1/search", json={"query": "red kayak", "user_id": "u", "k": 10}).json()["results"]
    assert ids[0] not in [r["id"] for r in results]
    assert {r["id"] for r in results} == {ids[1], fact_id}
    semantic = client.post(
        "/v1/search", json={"query": "red kayak", "user_id": "u", "k": 10, "types": ["semantic"]}
    ).json()["results"]
    assert [r["id"] for r in semantic] == [fact_id]


def test_event_bounds_judge_undated_memories_by_when_they_were_stored(runtime: Runtime, client: TestClient) -> None:
    """BM25's candidates stay within an event window; a memory told without a time is as old as its
    storing (today), as SQL's event filter has it."""
    times = ["2024-04-15T10:00:00Z", "2024-05-20T10:00:00Z", None]
    body = {
        "user_id": "u",
        "session_id": "rain",
        "messages": [{"role": "user", "content": "the roof leaked in the rain", "timestamp": t} for t in times],
    }
    response = client.post("/v1/messages", json=body)
    assert response.status_code == 201, response.text
    ids = response.json()["ids"]
    may = datetime(2024, 5, 1, tzinfo=UTC)
    scores = _scores(runtime, LexicalIndexes(1, 10_000, 4, 600), _tenant(runtime, client), "roof leak", event_after=may)
    assert set(map(str, scores.top("content", 10))) == {ids[1], ids[2]}
    scores = _scores(
        runtime, LexicalIndexes(1, 10_000, 4, 600), _tenant(runtime, client), "roof leak", event_before=may
    )
    assert set(map(str, scores.top("content", 10))) == {ids[0]}


def test_the_period_view_dates_a_memory_told_without_a_time_by_its_storing(
    runtime: Runtime, client: TestClient
) -> None:
    """An agent that writes without timestamps still gets "today" and "last month" right."""
    month_ago = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    told = client.post("/v1/memories", json={"content": "bought oat milk", "user_id": "u", "event_at": month_ago})
    stored = client.post("/v1/memories", json={"content": "bought oat milk", "user_id": "u"})
    [told_id], [stored_id] = told.json()["ids"], stored.json()["ids"]
    tenant_id, now = _tenant(runtime, client), datetime.now(UTC)
    indexes = LexicalIndexes(1, 10_000, 4, 600)
    today = _scores(runtime, indexes, tenant_id, "What did I buy today?", asked_at=now)
    by_id = dict(zip(map(str, today.ids), today.views["time"], strict=True))
    assert (by_id[stored_id], by_id[told_id]) == (1.0, 0.0)
    earlier = _scores(runtime, indexes, tenant_id, "What did I buy 40 days ago?", asked_at=now)
    by_id = dict(zip(map(str, earlier.ids), earlier.views["time"], strict=True))
    assert (by_id[stored_id], by_id[told_id]) == (0.0, 1.0)


def test_speaker_view_marks_the_memories_of_the_person_asked_about(runtime: Runtime, client: TestClient) -> None:
    ids = _messages(client, "s1", [("Maria Lopez", "I love sailing"), ("Ben", "I love sailing too")])
    scores = _scores(runtime, LexicalIndexes(1, 10_000, 4, 600), _tenant(runtime, client), "Does Maria like sailing?")
    by_id = dict(zip(map(str, scores.ids), scores.views["speaker"], strict=True))
    assert by_id[ids[0]] == 1.0 and by_id[ids[1]] == 0.0


def test_other_processes_writes_are_picked_up_off_the_request_path(runtime: Runtime, client: TestClient) -> None:
    """Rows this index was not told about (as from another process) arrive through a background
    recheck: the query that finds the scope due is answered at once and never takes the stamp itself."""
    tenant_id = _tenant(runtime, client)
    indexes = LexicalIndexes(0, 10_000, 4, 0.2, partial(confined_session, runtime.sessions))
    with threads_running(runtime, "max(updated_at)") as stamped_in, closing(indexes):
        _messages(client, "s1", [("Ana", "I play the oboe")])
        assert _scores(runtime, indexes, tenant_id, "oboe").top("content", 5)  # first use: built here
        stamped_in.clear()
        [bassoon] = _messages(client, "s1", [("Ben", "I switched to the bassoon")])
        time.sleep(0.25)
        _scores(runtime, indexes, tenant_id, "bassoon")  # due: answered as it is, recheck queued
        deadline = time.monotonic() + 10
        while str_ids(_scores(runtime, indexes, tenant_id, "bassoon").top("content", 5)) != [bassoon]:
            assert time.monotonic() < deadline, "the background recheck never picked the new row up"
            time.sleep(0.05)
        assert stamped_in and threading.main_thread().name not in stamped_in
        assert all(name.startswith("loci-scope-recheck") for name in stamped_in)
        # This process's own writes (changed()) are still read at once, in the caller's session.
        [flute] = _messages(client, "s1", [("Ana", "And the flute")])
        indexes.changed()
        assert str_ids(_scores(runtime, indexes, tenant_id, "flute").top("content", 5)) == [flute]
        assert threading.main_thread().name in stamped_in


def test_the_writers_next_search_finds_its_memory_without_stamping_the_scope(
    runtime: Runtime, client: TestClient
) -> None:
    """A memory this process commits is appended to its scopes' built indexes on commit
    (app.vector_changes.deliver_inserts), the user's and the tenant-wide one: the next search finds
    it without stamping or re-reading the scope."""
    _messages(client, "s1", [("Ana", "I play the oboe")])
    for body in ({"query": "oboe", "user_id": "u"}, {"query": "oboe"}):  # both scopes built
        assert client.post("/v1/search", json=body).status_code == 200
    [harpsichord] = _messages(client, "s1", [("Ben", "I tune my harpsichord")])
    refreshes = runtime.lexical_index.refreshes
    with threads_running(runtime, "max(updated_at)") as stamped_in:
        for body in ({"query": "harpsichord", "user_id": "u"}, {"query": "harpsichord"}):
            [first, *_] = client.post("/v1/search", json=body).json()["results"]
            assert first["id"] == harpsichord and first["scores"]["lexical"] > 0
    assert stamped_in == [] and runtime.lexical_index.refreshes == refreshes


def test_vectors_the_embedding_worker_writes_do_not_make_scopes_stamp(
    runtime: Runtime, client: TestClient, paused_worker: None
) -> None:
    """The BM25 index reads no vector: the worker's embeddings of a deferred batch leave its scopes
    as they are, while an edit of a memory's text still makes the next search stamp its scope."""
    size = runtime.settings.async_embed_batch_min  # a batch this large is stored before it is embedded
    batch = [{"content": f"note {i} about the harpsichord", "user_id": "u"} for i in range(size)]
    ids = client.post("/v1/memories", json={"memories": batch}).json()["ids"]
    assert client.get(f"/v1/memories/{ids[0]}").json()["embedding_status"] == "pending"
    assert client.post("/v1/search", json={"query": "harpsichord", "user_id": "u"}).status_code == 200
    while embed_pending(runtime.sessions, runtime.embedder, batch=25):
        pass
    with threads_running(runtime, "max(updated_at)") as stamped_in:
        assert client.post("/v1/search", json={"query": "harpsichord", "user_id": "u"}).status_code == 200
    assert stamped_in == []
    assert client.patch(f"/v1/memories/{ids[0]}", json={"content": "a note about the lute"}).status_code == 200
    with threads_running(runtime, "max(updated_at)") as stamped_in:
        [first] = client.post("/v1/search", json={"query": "lute", "user_id": "u", "k": 1}).json()["results"]
    assert stamped_in and first["id"] == ids[0]


def test_rows_handed_over_on_commit_score_as_a_rebuild_does(runtime: Runtime, client: TestClient) -> None:
    """Turns given out of order with naive timestamps: the windows of the appended rows (event
    order) and their BM25 equal those of the scope read anew from the database."""
    tenant_id = _tenant(runtime, client)
    _messages(client, "s1", [("Ana", "I play the oboe"), ("Ben", "Since when?")])
    _scores(runtime, runtime.lexical_index, tenant_id, "oboe")  # the scope is built, then written to
    turns = [("Ana", "Since school, every Sunday", "2024-05-01T10:00:00"), ("Ben", "Oboe lessons?", "2024-04-30T09:00")]
    body = {
        "user_id": "u",
        "session_id": "s1",
        "messages": [{"role": "user", "name": n, "content": c, "timestamp": t} for n, c, t in turns],
    }
    assert client.post("/v1/messages", json=body).status_code == 201
    views = []
    for indexes in (runtime.lexical_index, LexicalIndexes(runtime.settings.context_window, 10_000, 4, 600)):
        scores = _scores(runtime, indexes, tenant_id, "oboe")
        derived = indexes._cache._entries[(tenant_id, "u")].built.published
        raw = derived.scores("oboe sunday lessons")  # without word expansion, which only one of them has
        views.append({str(i): (raw["content"][p], raw["context"][p]) for p, i in enumerate(scores.ids)})
    through, rebuilt = views
    assert through.keys() == rebuilt.keys() and len(through) == 4
    assert all(np.allclose(through[i], rebuilt[i]) for i in through)


def test_committed_inserts_are_delivered_once_the_connection_is_back(runtime: Runtime, client: TestClient) -> None:
    """Delivery may wait for an index's lock, whose holder may be waiting for a pooled connection:
    the writer must have given its connection back by then. A rolled-back insert is never delivered."""
    tenant_id = _tenant(runtime, client)
    sessions = sessionmaker(runtime.engine, expire_on_commit=False)
    held: list[int] = []  # this thread's checkouts less checkins
    delivered: list[tuple[list[str], int]] = []

    def count(change: int) -> Callable[..., None]:
        def record(*_: object) -> None:
            if threading.current_thread() is threading.main_thread():
                held.append(change)

        return record

    deliver_inserts(sessions, lambda rows: delivered.append(([row.content for row in rows], sum(held))))
    listeners = [("checkout", count(1)), ("checkin", count(-1))]
    for name, listener in listeners:
        event.listen(runtime.engine, name, listener)
    try:
        items = [MemoryCreate(content=text, user_id="u") for text in ("kept", "abandoned")]
        with confined_session(sessions, tenant_id) as session:
            create_memories(session, tenant_id, items[:1], embed_items(runtime.embedder, items[:1]), "test")
        try:
            with confined_session(sessions, tenant_id) as session:
                create_memories(session, tenant_id, items[1:], embed_items(runtime.embedder, items[1:]), "test")
                raise LookupError("abandon the transaction")
        except LookupError:
            pass
    finally:
        for name, listener in listeners:
            event.remove(runtime.engine, name, listener)
    assert delivered == [(["kept"], 0)]


def str_ids(ids: list) -> list[str]:  # type: ignore[type-arg]
    return [str(i) for i in ids]


def test_a_large_scope_is_built_and_refreshed_only_in_the_background(runtime: Runtime, client: TestClient) -> None:
    """Over `background_rows` memories a query never waits for a build or a refresh, its own
    process's writes included: it gets None (Postgres full text serves it) until the first build."""
    tenant_id = _tenant(runtime, client)
    indexes = LexicalIndexes(0, 10_000, 4, 600, partial(confined_session, runtime.sessions), background_rows=2)
    with threads_running(runtime, "SELECT id, seq") as loaded_in, closing(indexes):
        ids = _messages(client, "s1", [("Ana", "I play the oboe"), ("Ben", "Since when?"), ("Ana", "Since school")])
        query = SearchQuery(tenant_id=tenant_id, text="oboe", vector=np.zeros(1), user_id="u")
        with runtime.sessions.begin() as session:
            assert indexes.scores(session, query) is None  # 3 > 2 memories: built in the background
        deadline = time.monotonic() + 10
        while (scores := _try_scores(runtime, indexes, query)) is None:
            assert time.monotonic() < deadline, "the background build never finished"
            time.sleep(0.05)
        assert str_ids(scores.top("content", 5)) == [ids[0]]
        [bassoon] = _messages(client, "s1", [("Ben", "I switched to the bassoon")])
        indexes.changed()  # this process wrote: a small scope would refresh in the caller now
        bassoon_query = SearchQuery(tenant_id=tenant_id, text="bassoon", vector=np.zeros(1), user_id="u")
        while str_ids((_try_scores(runtime, indexes, bassoon_query) or scores).top("content", 5)) != [bassoon]:
            assert time.monotonic() < deadline, "the background refresh never picked the new row up"
            time.sleep(0.05)
        assert len(loaded_in) >= 2 and threading.main_thread().name not in loaded_in


def _try_scores(runtime: Runtime, indexes: LexicalIndexes, query: SearchQuery) -> LexicalScores | None:
    with runtime.sessions.begin() as session:
        return indexes.scores(session, query)


def _turns(count: int, seed: int) -> list[SimpleNamespace]:
    """Turns of a few sessions arriving out of event-time order (with ties, which seq orders), among
    facts that stand alone and turns with no session."""
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    words = ["oboe", "school", "sunday", "bassoon", "lisbon", "garden", "puppy", "violin"]
    return [
        SimpleNamespace(
            id=uuid.uuid4(),
            seq=i + 1,
            type="semantic" if i % 7 == 0 else "episodic",
            agent_id=None,
            session_id=None if i % 11 == 0 else f"s{rng.randrange(6)}",
            event_at=start + timedelta(minutes=rng.randrange(count)),
            updated_at=start,
            content=" ".join(rng.sample(words, rng.randint(1, 3))),
            attributes={"speaker": rng.choice(["Ana", "Ben"])},
        )
        for i in range(count)
    ]


def test_the_length_view_weighs_turns_and_leaves_other_memories_neutral() -> None:
    """A conversation turn scores its log length less the turns' mean; a fact outside any
    conversation, an episode with no session and a memory the snapshot has not seen yet score 0,
    the turns' mean, rather than a one-liner's penalty."""
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def memory(seq: int, content: str, session_id: str | None, kind: str = "episodic") -> SimpleNamespace:
        return SimpleNamespace(
            id=uuid.uuid4(),
            seq=seq,
            type=kind,
            agent_id=None,
            session_id=session_id,
            event_at=start,
            updated_at=start,
            content=content,
            attributes={"speaker": "Ben"},
        )

    short = memory(1, "Yes.", "s")
    long = memory(2, "We put an offer on a stone cottage near the coast with a big vegetable garden.", "s")
    fact = memory(3, "Likes tea.", None, "semantic")
    note = memory(4, "Dentist.", None)
    lexicon = ScopeLexicon(2)
    lexicon.add([short, long, fact, note])
    derived = lexicon.prepare()
    views = derived.scores("where is Ben moving")
    scores = LexicalScores(derived.ids, views, None, derived.position)
    unseen = uuid.uuid4()
    length = scores.of([short.id, long.id, fact.id, note.id, unseen])["length"]
    assert length[0] < 0 < length[1] and math.isclose(length[0], -length[1], rel_tol=1e-5)
    assert not length[2:].any()


def test_edits_appended_again_score_as_a_rebuild_does() -> None:
    """Edits (new words, another speaker, session or event time) appended over a lexicon whose
    common terms are kept give every memory the scores of a lexicon built from the edited rows,
    carried views included; the superseded positions score nothing."""
    rows = _turns(300, seed=11)
    rng = random.Random(12)
    edited_at = datetime(2026, 1, 1, tzinfo=UTC)
    edits = [
        SimpleNamespace(
            **{
                **vars(row),
                "content": f"{row.content} piano" if i % 2 else "piano lisbon",
                "session_id": row.session_id if i % 3 else f"s{rng.randrange(6)}",
                "event_at": row.event_at + timedelta(minutes=rng.randrange(-60, 60)),
                "updated_at": edited_at,
                "attributes": {"speaker": "Cleo"},
            }
        )
        for i, row in enumerate(rng.sample(rows, 40))
    ]
    now = {row.id: row for row in rows} | {row.id: row for row in edits}
    fresh = ScopeLexicon(2)
    fresh.add(sorted(now.values(), key=lambda row: row.seq))
    expected = fresh.prepare()
    for window in (0, 2):
        grown = ScopeLexicon(window)
        grown.add(rows)
        grown.prepare().score_common_terms()
        grown.add(edits)
        derived = grown.prepare()
        assert derived.held == len(rows) and len(derived.ids) == len(rows) + len(edits)
        assert derived.carried is not None and derived.carried.views
        if window != 2:
            continue
        for query in ["oboe school", "piano lisbon", "Cleo garden", "Ana violin"]:
            scores, wanted = derived.scores(query), expected.scores(query)
            at = [derived.position[memory_id] for memory_id in expected.ids]
            for view in wanted:
                assert np.allclose(scores[view][at], wanted[view], atol=1e-6), (query, view)
                assert not scores[view][derived.superseded].any(), (query, view)


def test_window_frequencies_by_runs_equal_those_by_neighbours() -> None:
    """The two ways of finding a term's windows (chosen by how far its postings reach) agree exactly,
    across sessions whose turns arrive out of order, facts that stand alone and turns with no session."""
    rows = _turns(300, seed=5)
    for window in (0, 1, 2):
        lexicon = ScopeLexicon(window)
        lexicon.add(rows)
        derived = lexicon.prepare()
        for term, posting in derived.postings.items():
            by_runs = _window_tf_by_runs(derived, *posting, len(rows))
            by_neighbours = _window_tf_by_neighbours(derived, *posting, len(rows))
            order = np.argsort(by_runs[0])
            assert np.array_equal(by_runs[0][order], by_neighbours[0]), term
            assert np.array_equal(by_runs[1][order], by_neighbours[1]), term


def test_common_terms_scored_ahead_give_the_same_scores() -> None:
    rng = random.Random(8)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    words = [f"w{i}" for i in range(400)]
    rows = [
        SimpleNamespace(
            id=uuid.uuid4(),
            seq=i + 1,
            type="episodic",
            agent_id=None,
            session_id=f"s{i // 10}",
            event_at=start + timedelta(minutes=i),
            updated_at=start,
            content=" ".join(rng.choice(words[:8] if rng.random() < 0.5 else words) for _ in range(4)),
            attributes={"speaker": "Ana"},
        )
        for i in range(2000)
    ]
    ahead, fresh = ScopeLexicon(2), ScopeLexicon(2)
    ahead.add(rows)
    fresh.add(rows)
    scored_ahead, scored_fresh = ahead.prepare(score_ahead=True), fresh.prepare()
    kept_ahead, kept_fresh = scored_ahead.kept.views, scored_fresh.kept.views
    common = {term for term, (docs, _) in scored_ahead.postings.items() if len(docs) >= 0.01 * len(rows)}
    assert {"w0", "w1"} <= set(kept_ahead) <= common  # the eight frequent words, most common first
    assert not kept_fresh
    for query in ["w0 w3 w250", "w7 w399", "w5"]:
        scored, expected = scored_ahead.scores(query), scored_fresh.scores(query)
        assert all(np.array_equal(scored[view], expected[view]) for view in expected)
    # Rare words are scored per query (O(their postings)) and never take the common terms' room.
    assert "w250" in scored_ahead.postings and "w250" not in kept_ahead and "w399" not in kept_fresh
    assert "w7" in kept_fresh


def test_queries_read_the_published_snapshot_while_a_refresh_appends() -> None:
    """A refresh appends and builds beside the snapshot queries read: a query neither waits for it
    nor finds the common terms' kept scores gone until the next snapshot is whole."""
    rows = _turns(300, seed=6)
    lexicon = ScopeLexicon(2)
    lexicon.add(rows[:200])
    before = lexicon.prepare(score_ahead=True)
    terms = set(tokenize("oboe school"))
    assert terms <= set(before.kept.views)  # eight words in all: every one is common
    expected = before.scores("oboe school")
    lexicon.add(rows[200:])
    answered: dict[str, dict[str, np.ndarray]] = {}

    def query() -> None:
        answered["scores"] = lexicon.published.scores("oboe school")

    with lexicon.lock:  # as a refresh holds it while it builds the next snapshot
        asking = threading.Thread(target=query)
        asking.start()
        asking.join(timeout=10)
        assert not asking.is_alive(), "the query waited for the refresh"
    assert lexicon.published is before and terms <= set(before.kept.views)
    assert all(np.array_equal(answered["scores"][view], expected[view]) for view in expected)
    after = lexicon.prepare()
    assert lexicon.published is after and len(after.ids) == 300
    assert len(after.scores("oboe school")["content"]) == 300


def test_views_carried_over_appends_equal_views_scored_anew() -> None:
    """Kept views brought up to date across appends (turns arriving out of event order, into old
    sessions and new ones, facts and turns without a session) equal those of a lexicon built from
    all the rows at once, score for score."""
    rows = _turns(400, seed=9)
    for window in (0, 1, 2):
        grown = ScopeLexicon(window)
        grown.add(rows[:150])
        grown.prepare().score_common_terms()
        for end, asked in ((151, True), (190, False), (260, True), (400, True)):  # no query after 190
            before = grown.published
            kept_before = set(before.kept.views) | set(before.carried.views if before.carried else ())
            grown.add(rows[len(grown.ids) : end])
            now = grown.prepare()
            assert now.carried is not None and set(now.carried.views) == kept_before
            if not asked:
                continue
            fresh = ScopeLexicon(window)
            fresh.add(rows[:end])
            scored = fresh.prepare()
            for term in kept_before:
                views, expected = now.term_views(term), scored.term_views(term)
                assert term not in now.carried.views  # carried, not scored anew
                assert views is not None and expected is not None
                for at, values in (("content_at", "content"), ("context_at", "context"), ("context_at", "context_tf")):
                    mine, theirs = np.argsort(getattr(views, at)), np.argsort(getattr(expected, at))
                    assert np.array_equal(getattr(views, at)[mine], getattr(expected, at)[theirs]), (term, at)
                    assert np.array_equal(getattr(views, values)[mine], getattr(expected, values)[theirs]), term


def test_a_scope_that_grows_past_background_rows_is_refreshed_in_the_background(
    runtime: Runtime, client: TestClient
) -> None:
    tenant_id = _tenant(runtime, client)
    indexes = LexicalIndexes(0, 10_000, 4, 600, partial(confined_session, runtime.sessions), background_rows=3)
    with threads_running(runtime, "SELECT id, seq") as loaded_in, closing(indexes):
        _messages(client, "s1", [("Ana", "I play the oboe"), ("Ben", "Since when?")])
        query = SearchQuery(tenant_id=tenant_id, text="bassoon", vector=np.zeros(1), user_id="u")
        assert _try_scores(runtime, indexes, query) is not None  # 2 memories: built in the caller
        assert loaded_in == [threading.main_thread().name]
        [bassoon] = _messages(client, "s1", [("Ben", "I switched to the bassoon"), ("Ana", "Loud?")])[:1]
        indexes.changed()
        stale = _try_scores(runtime, indexes, query)  # now 4 > 3: the refresh goes to the background
        assert stale is not None
        deadline = time.monotonic() + 10
        while str_ids((_try_scores(runtime, indexes, query) or stale).top("content", 5)) != [bassoon]:
            assert time.monotonic() < deadline, "the background refresh never picked the new rows up"
            time.sleep(0.05)
        assert loaded_in[0] == threading.main_thread().name and threading.main_thread().name not in loaded_in[1:]


def test_top_positions_of_a_large_scope_equal_a_full_sort() -> None:
    """The sampled floor and the positives-only path give exactly what a stable sort gives: the
    highest positive scores, ties at the cut to the older memory."""
    rng = np.random.default_rng(7)
    n = 40 * SAMPLE_FOR_TOP
    many_ties = rng.integers(0, 6, n).astype(np.float64)  # generated text ties often
    few_positive = np.zeros(n)
    few_positive[rng.choice(n, 30, replace=False)] = rng.random(30) + 0.1
    for scores in (many_ties, rng.random(n), few_positive, np.zeros(n)):
        for limit in (1, 10, 50, 200):
            order = np.lexsort((np.arange(n), -scores))[:limit]
            expected = np.sort(order[scores[order] > 0])
            assert sorted(_top_positions(scores, limit).tolist()) == expected.tolist()


def test_windows_are_each_sessions_turns_in_event_order() -> None:
    """The window arrays, built from bookkeeping kept on append, against the definition: a turn's
    neighbours are the turns around it in its session ordered by (event time, seq); facts and turns
    without a session stand alone."""
    rows = _turns(200, seed=3)
    lexicon = ScopeLexicon(2)
    lexicon.add(rows[:120])
    lexicon.prepare()
    lexicon.add(rows[120:])  # an append after derived arrays existed
    neighbours = lexicon.prepare().neighbours
    sessions: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        if row.session_id is not None and row.type == "episodic":
            sessions.setdefault(row.session_id, []).append(i)
    expected = np.full((len(rows), 5), len(rows))
    expected[:, 2] = np.arange(len(rows))
    for members in sessions.values():
        members.sort(key=lambda i: (rows[i].event_at, rows[i].seq))
        for rank, i in enumerate(members):
            for offset in (-2, -1, 1, 2):
                if 0 <= rank + offset < len(members):
                    expected[i, 2 + offset] = members[rank + offset]
    assert np.array_equal(neighbours, expected)


def test_scores_taken_before_an_append_treat_the_new_memories_as_unseen() -> None:
    """Scores hold the scope as it was; the lexicon's id -> position map keeps growing with appends,
    so a memory appended later must read as unseen (0), not index past the arrays."""
    rows = _turns(60, seed=4)
    lexicon = ScopeLexicon(2)
    lexicon.add(rows[:50])
    derived = lexicon.prepare()
    scores = LexicalScores(derived.ids, derived.scores("oboe school"), None, derived.position)
    lexicon.add(rows[50:])
    looked_up = scores.of([rows[0].id, rows[55].id])
    assert all(values[1] == 0.0 for values in looked_up.values())
    assert looked_up["content"][0] == scores.views["content"][0]
