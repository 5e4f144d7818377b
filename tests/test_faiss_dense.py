"""Dense generators. FAISS: exact on small scopes, the shared filters, coherent after deletes and writes.
pgvector: a scope that is a small share of the table is searched exactly instead of by HNSW."""

import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial

import faiss
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text

from app.api.schemas import MemoryCreate
from app.db.models import Memory
from app.db.tenancy import confined_session
from app.memory_notices import OWN_LATE_EDIT
from app.runtime import Runtime
from app.services.memory_store import create_memories, embed_items
from app.services.tenants import authenticate
from app.vector_changes import is_vector_write, notify_vector_changes
from benchmarks.corpus import conversation_texts, queries
from retrieval import SearchQuery, faiss_index
from retrieval.candidates import dense_candidates
from retrieval.faiss_index import FaissIndexes
from retrieval.scope_cache import EDIT_MARGIN, InsertedRow, scope_stamp
from tests.conftest import LiveServer, await_notices, branches_run, notices_heard, threads_running


def _indexes(runtime: Runtime, hnsw_threshold: int) -> Iterator[FaissIndexes]:
    """FAISS as the session runtime's dense generator for one test, then pgvector again; handed the
    runtime's committed inserts, as the service's is."""
    indexes = FaissIndexes(hnsw_threshold, ef_search=64, max_scopes=8, recheck_seconds=600)
    stop = notify_vector_changes(runtime.engine, indexes.changed, receives_inserts=True)
    runtime.dense_index = indexes
    try:
        yield indexes
    finally:
        runtime.dense_index = None
        stop()


@pytest.fixture()
def flat(runtime: Runtime) -> Iterator[FaissIndexes]:
    yield from _indexes(runtime, hnsw_threshold=10**9)


@pytest.fixture()
def hnsw(runtime: Runtime) -> Iterator[FaissIndexes]:
    yield from _indexes(runtime, hnsw_threshold=1)


def _load(client: TestClient, count: int = 200) -> list[str]:
    ids: list[str] = []
    texts = conversation_texts(count, seed=3)
    for start in range(0, count, 50):  # under LOCI_ASYNC_EMBED_BATCH_MIN: embedded before the response
        batch = [{"content": t, "user_id": "u"} for t in texts[start : start + 50]]
        ids += client.post("/v1/memories", json={"memories": batch}).json()["ids"]
    return ids


def _tenant(runtime: Runtime, client: TestClient):  # type: ignore[no-untyped-def]
    with runtime.sessions() as session:
        return authenticate(session, client.headers["Authorization"].split()[1]).tenant_id


def _brute_force(runtime: Runtime, tenant_id, vector: np.ndarray, k: int) -> list[str]:  # type: ignore[no-untyped-def]
    with runtime.sessions() as session:
        rows = session.execute(
            text("SELECT id, embedding::text FROM memories WHERE tenant_id = :t AND user_id = 'u'"), {"t": tenant_id}
        ).all()
    matrix = np.array([np.array(r[1][1:-1].split(","), dtype=np.float32) for r in rows])
    order = np.argsort(-(matrix @ vector), kind="stable")[:k]
    return [str(rows[i][0]) for i in order]


def _faiss_ids(runtime: Runtime, indexes: FaissIndexes, tenant_id, question: str, k: int) -> list[str]:  # type: ignore[no-untyped-def]
    query = SearchQuery(tenant_id=tenant_id, text=question, vector=runtime.queries.embed(question), k=k, user_id="u")
    with runtime.sessions.begin() as session:
        return [str(i) for i, _ in indexes.candidates(session, query, k)]


def test_flat_index_equals_brute_force_cosine(runtime: Runtime, client: TestClient, flat: FaissIndexes) -> None:
    _load(client)
    tenant_id = _tenant(runtime, client)
    for question in queries(8, seed=5):
        expected = _brute_force(runtime, tenant_id, runtime.queries.embed(question), 10)
        assert _faiss_ids(runtime, flat, tenant_id, question, 10) == expected, question


def test_hnsw_index_recalls_the_exact_top_10(runtime: Runtime, client: TestClient, hnsw: FaissIndexes) -> None:
    _load(client)
    tenant_id = _tenant(runtime, client)
    recalls = []
    for question in queries(8, seed=6):
        expected = set(_brute_force(runtime, tenant_id, runtime.queries.embed(question), 10))
        recalls.append(len(expected & set(_faiss_ids(runtime, hnsw, tenant_id, question, 10))) / 10)
    assert np.mean(recalls) >= 0.95


def test_hard_delete_leaves_faiss_results_at_once(runtime: Runtime, client: TestClient, flat: FaissIndexes) -> None:
    ids = _load(client, 100)
    target = conversation_texts(100, seed=3)[17]
    found = client.post("/v1/search", json={"query": target, "user_id": "u", "k": 5}).json()["results"]
    assert found[0]["id"] == ids[17] and found[0]["scores"]["dense"] > 0.99
    rebuilds = flat.rebuilds
    assert client.delete(f"/v1/memories/{ids[17]}", params={"hard": "true"}).status_code == 200
    after = client.post("/v1/search", json={"query": target, "user_id": "u", "k": 5}).json()["results"]
    assert ids[17] not in {r["id"] for r in after}
    assert flat.rebuilds == rebuilds + 1  # the commit told the index; it re-read the scope
    assert ids[17] not in _faiss_ids(runtime, flat, _tenant(runtime, client), target, 50)


def test_a_stamp_read_from_indexes_equals_one_scan_of_the_scope(runtime: Runtime, client: TestClient) -> None:
    """A stamp reads each aggregate from its own index (migration 0005); for a tenant and for a user
    it must say what one scan of the scope's rows says, for the dense index's embedded rows too."""
    ids = _load(client, 60)
    other = [{"content": t, "user_id": "v"} for t in conversation_texts(5, seed=8)]
    assert client.post("/v1/memories", json={"memories": other}).status_code == 201
    tenant_id = _tenant(runtime, client)
    with runtime.sessions() as session:  # never committed: the pending row is not left to the worker
        session.execute(
            text("UPDATE memories SET embedding = NULL, updated_at = now() + interval '1 hour' WHERE id = :id"),
            {"id": ids[-1]},
        )
        for user_id, rows in ((None, 65), ("u", 60)):
            for embedded_only in (False, True):
                where = "tenant_id = :t" + (" AND user_id = :u" if user_id else "")
                where += " AND embedding IS NOT NULL" if embedded_only else ""
                one_scan = session.execute(
                    text(f"SELECT count(*), coalesce(max(seq), 0), max(updated_at) FROM memories WHERE {where}"),
                    {"t": tenant_id, "u": user_id},
                ).one()
                assert one_scan[0] == rows - embedded_only
                assert scope_stamp(session, (tenant_id, user_id), embedded_only) == tuple(one_scan)


def test_new_memory_is_found_by_faiss_right_after_its_write(client: TestClient, flat: FaissIndexes) -> None:
    _load(client, 50)
    client.post("/v1/search", json={"query": "warm the index", "user_id": "u"})
    new = client.post("/v1/memories", json={"content": "Zara keeps her passport in the blue folder.", "user_id": "u"})
    hits = client.post("/v1/search", json={"query": "where is Zara's passport", "user_id": "u", "k": 3}).json()
    assert hits["results"][0]["id"] == new.json()["ids"][0]
    assert hits["results"][0]["scores"]["dense"] is not None


def _record_vector_reads(runtime: Runtime) -> Iterator[list[str]]:
    loads: list[str] = []

    def record(conn, cursor, statement, *_) -> None:  # type: ignore[no-untyped-def]
        if "vector_send(embedding)" in statement:
            loads.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        yield loads
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)


def test_writes_are_handed_to_the_index_without_reading_the_scope(
    runtime: Runtime, client: TestClient, flat: FaissIndexes
) -> None:
    """A write's vectors reach the index once committed (app.vector_changes): the search after it
    stamps nothing and reads no vector, and its result is still the exact top 10."""
    _load(client, 100)
    tenant_id = _tenant(runtime, client)
    _faiss_ids(runtime, flat, tenant_id, "warm the index", 10)
    refreshes = flat.rebuilds
    with closing(_record_vector_reads(runtime)) as reads:
        loads = next(reads)
        for text_ in conversation_texts(3, seed=41):
            assert client.post("/v1/memories", json={"content": text_, "user_id": "u"}).status_code == 201
            question = text_.split(".")[0]
            expected = _brute_force(runtime, tenant_id, runtime.queries.embed(question), 10)
            assert _faiss_ids(runtime, flat, tenant_id, question, 10) == expected
    assert loads == [] and flat.rebuilds == refreshes

    # The same rows handed over again (as when a refresh read them first) are not added twice.
    with runtime.sessions() as session:
        latest = session.scalars(
            select(Memory)
            .where(Memory.tenant_id == tenant_id, Memory.user_id == "u")
            .order_by(Memory.seq.desc())
            .limit(3)
        )
        again = [InsertedRow(**{name: getattr(memory, name) for name in InsertedRow._fields}) for memory in latest]
    held = len(flat._cache._entries[(tenant_id, "u")].built.ids)
    flat.appended(again)
    assert len(flat._cache._entries[(tenant_id, "u")].built.ids) == held == 103


@pytest.mark.parametrize("hnsw_threshold", [10**9, 103])
def test_a_long_tail_of_writes_is_folded_into_the_index(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch, hnsw_threshold: int
) -> None:
    """Written vectors are searched exactly beside the index until the tail is long, then folded into
    a copy of it: into a flat one, or into an HNSW graph built anew once the scope reaches the
    threshold. Every search in between returns the exact top 10."""
    monkeypatch.setattr(faiss_index, "TAIL_ROWS", 2)
    with closing(_indexes(runtime, hnsw_threshold)) as made:
        indexes = next(made)
        _load(client, 100)
        tenant_id = _tenant(runtime, client)
        _faiss_ids(runtime, indexes, tenant_id, "warm the index", 10)
        for text_ in conversation_texts(5, seed=43):
            assert client.post("/v1/memories", json={"content": text_, "user_id": "u"}).status_code == 201
            question = text_.split(".")[0]
            assert _faiss_ids(runtime, indexes, tenant_id, question, 10) == _brute_force(
                runtime, tenant_id, runtime.queries.embed(question), 10
            )
        built = indexes._cache._entries[(tenant_id, "u")].built
        assert built is not None and built.index is not None and len(built.ids) == 105
        assert built.index.ntotal + (0 if built.tail is None else len(built.tail)) == 105
        assert built.index.ntotal == 103  # folded at the third write; the fourth and fifth in the tail
        assert isinstance(built.index, faiss.IndexHNSWFlat) == (hnsw_threshold == 103)


def test_a_vector_written_out_of_seq_order_is_added_without_reloading_the_scope(
    runtime: Runtime, client: TestClient, flat: FaissIndexes, paused_worker: None
) -> None:
    """A memory stored pending and embedded after a later one was indexed has a seq below the
    index's: it is found among the scope's recent ids and added, not by reloading every vector.
    (The worker is paused: had it embedded the memory before the index was built, as it once did
    in CI, the index would hold it from the start.)"""
    _load(client, 20)
    tenant_id = _tenant(runtime, client)
    item = MemoryCreate(content="Zara keeps her passport in the blue folder.", user_id="u")
    with confined_session(runtime.sessions, tenant_id) as session:
        [pending_id] = create_memories(
            session, tenant_id, [item], embed_items(runtime.embedder, [item], embed=False), "test"
        )
        # Stored an hour ago, as far as the index's time watermark can tell (the worker leaves
        # updated_at as it was): only its seq and the scope's count show it is missing.
        session.execute(
            text("UPDATE memories SET updated_at = updated_at - interval '1 hour' WHERE id = :id"), {"id": pending_id}
        )
        session.commit()
    assert (
        client.post("/v1/memories", json={"content": "Omar waters the ferns on Sundays.", "user_id": "u"}).status_code
        == 201
    )
    _faiss_ids(runtime, flat, tenant_id, "warm the index", 10)
    with confined_session(runtime.sessions, tenant_id) as session:
        vector = runtime.embedder.embed([item.content])[0]
        session.execute(
            text("UPDATE memories SET embedding = CAST(:v AS vector) WHERE id = :id"),
            {"v": "[" + ",".join(map(str, vector.tolist())) + "]", "id": pending_id},
        )
        session.commit()
    flat.changed()
    question = "where is Zara's passport"
    with closing(_record_vector_reads(runtime)) as reads:
        loads = next(reads)
        found = _faiss_ids(runtime, flat, tenant_id, question, 10)
    assert found[0] == str(pending_id)
    assert found == _brute_force(runtime, tenant_id, runtime.queries.embed(question), 10)
    assert [("seq >" in s, "= ANY(" in s) for s in loads] == [(True, False), (False, True)]


def _built(indexes: FaissIndexes, tenant_id):  # type: ignore[no-untyped-def]
    return indexes._cache._entries[(tenant_id, "u")].built


def test_edits_and_deletes_leave_dead_positions_instead_of_reloading_the_scope(
    runtime: Runtime, client: TestClient, flat: FaissIndexes
) -> None:
    """An edited vector joins the tail and its old position is skipped; a deleted memory's position
    is skipped; a change that leaves the vector alone adds nothing. No step reads the whole scope,
    and every search returns the exact top 10, until dead positions pass their share: then the
    scope is built anew, without them."""
    ids = _load(client, 100)
    tenant_id = _tenant(runtime, client)
    _faiss_ids(runtime, flat, tenant_id, "warm the index", 10)

    def exact_without_reloading(question: str) -> list[str]:
        with closing(_record_vector_reads(runtime)) as reads:
            loads = next(reads)
            found = _faiss_ids(runtime, flat, tenant_id, question, 10)
        assert all("seq >" in s or "= ANY(" in s for s in loads), loads
        assert found == _brute_force(runtime, tenant_id, runtime.queries.embed(question), 10), question
        return found

    edit = {"content": "Zara keeps her passport in the blue folder."}
    assert client.patch(f"/v1/memories/{ids[17]}", json=edit).status_code == 200
    assert exact_without_reloading("where is Zara's passport")[0] == ids[17]
    assert len(_built(flat, tenant_id).ids) == 101 and _built(flat, tenant_id).dead == {17}

    for memory_id in ids[:6]:
        assert client.delete(f"/v1/memories/{memory_id}", params={"hard": "true"}).status_code == 200
    found = exact_without_reloading(conversation_texts(100, seed=3)[3])
    assert not set(found) & set(ids[:6])
    assert _built(flat, tenant_id).dead == {0, 1, 2, 3, 4, 5, 17}

    assert client.patch(f"/v1/memories/{ids[40]}", json={"importance": 0.9}).status_code == 200
    flat.changed()  # (not a vector write: a recheck would find it)
    exact_without_reloading("what happened on the weekend")
    assert len(_built(flat, tenant_id).ids) == 101 and len(_built(flat, tenant_id).dead) == 7

    for memory_id in ids[6:20]:  # 21 of 101 positions dead: past MAX_DEAD_SHARE
        client.delete(f"/v1/memories/{memory_id}", params={"hard": "true"})
    _faiss_ids(runtime, flat, tenant_id, "warm the index", 10)
    rebuilt = _built(flat, tenant_id)
    assert rebuilt.dead == frozenset() and len(rebuilt.ids) == 80 and rebuilt.index.ntotal == 80


def test_an_edit_in_an_hnsw_graph_joins_its_tail(runtime: Runtime, client: TestClient, hnsw: FaissIndexes) -> None:
    """The old vector is read back from the graph to tell an edit from a change that kept it."""
    ids = _load(client, 100)
    tenant_id = _tenant(runtime, client)
    _faiss_ids(runtime, hnsw, tenant_id, "warm the index", 10)
    assert client.patch(f"/v1/memories/{ids[3]}", json={"importance": 0.8}).status_code == 200
    edit = {"content": "Zara keeps her passport in the blue folder."}
    assert client.patch(f"/v1/memories/{ids[17]}", json=edit).status_code == 200
    hnsw.changed()
    with closing(_record_vector_reads(runtime)) as reads:
        loads = next(reads)
        assert _faiss_ids(runtime, hnsw, tenant_id, "where is Zara's passport", 10)[0] == ids[17]
    assert [("seq >" in s) for s in loads] == [True]
    built = _built(hnsw, tenant_id)
    assert isinstance(built.index, faiss.IndexHNSWFlat) and built.dead == {17} and len(built.ids) == 101


def test_concurrent_edits_deletes_and_writes_leave_the_index_exact(
    runtime: Runtime, client: TestClient, live_server: LiveServer, flat: FaissIndexes
) -> None:
    """Edits, deletes, writes and searches from four threads for a few seconds through a live
    server: no request fails, and afterwards the index still gives the exact top 10."""
    ids = _load(client, 100)
    tenant_id = _tenant(runtime, client)
    _faiss_ids(runtime, flat, tenant_id, "warm the index", 10)
    headers = {"Authorization": f"Bearer {live_server.api_key}"}
    stop, failures = threading.Event(), []
    texts = conversation_texts(400, seed=47)

    def run(step) -> None:  # type: ignore[no-untyped-def]
        with httpx.Client(base_url=live_server.url, headers=headers, timeout=30) as http:
            number = 0
            while not stop.is_set():
                number += 1
                response = step(http, number)
                if response.status_code >= 300:
                    failures.append((response.status_code, response.text))

    def edit(http: httpx.Client, n: int) -> httpx.Response:
        return http.patch(f"/v1/memories/{ids[n % 50]}", json={"content": f"{texts[n % 400]} (edit {n})"})

    def delete(http: httpx.Client, n: int) -> httpx.Response:
        time.sleep(0.05)
        return http.delete(f"/v1/memories/{ids[50 + n % 50]}", params={"hard": "true"}) if n <= 50 else edit(http, n)

    def write(http: httpx.Client, n: int) -> httpx.Response:
        return http.post("/v1/memories", json={"content": f"{texts[(n * 7) % 400]} (write {n})", "user_id": "u"})

    def search(http: httpx.Client, n: int) -> httpx.Response:
        return http.post("/v1/search", json={"query": texts[(n * 13) % 400][:60], "user_id": "u", "k": 10})

    threads = [threading.Thread(target=run, args=(step,)) for step in (edit, delete, write, search)]
    for thread in threads:
        thread.start()
    time.sleep(4)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    flat.changed()
    for question in queries(6, seed=48):
        expected = _brute_force(runtime, tenant_id, runtime.queries.embed(question), 10)
        assert _faiss_ids(runtime, flat, tenant_id, question, 10) == expected, question


@pytest.mark.parametrize("ran_for_s", [1, 2 * EDIT_MARGIN.total_seconds()])
def test_an_edit_that_commits_after_a_later_one_is_not_missed(
    runtime: Runtime, client: TestClient, flat: FaissIndexes, ran_for_s: float
) -> None:
    """`updated_at` is set before a transaction commits: an edit committing after a later edit has
    been read falls below the index's watermark, and leaves the scope's stamp as it was. The index
    still takes it: this process's change refreshes the scope, and the refresh reads back a margin,
    or, for a transaction that ran longer than that, as far as the edit's notice says."""
    ids = _load(client, 100)  # more than a search's 42 proposals: a stale vector is not proposed
    tenant_id = _tenant(runtime, client)
    _faiss_ids(runtime, flat, tenant_id, "warm the index", 10)
    texts = {ids[3]: "Zara keeps her passport in the blue folder.", ids[5]: "Omar waters the ferns on Sundays."}
    vectors = {memory_id: runtime.embedder.embed([t])[0].tolist() for memory_id, t in texts.items()}
    edit = text("UPDATE memories SET embedding = CAST(:v AS vector), updated_at = :at WHERE id = :id")
    now = datetime.now(UTC)
    with confined_session(runtime.sessions, tenant_id) as first:
        first.execute(edit, {"v": str(vectors[ids[3]]), "at": now - timedelta(seconds=ran_for_s), "id": ids[3]})
        with confined_session(runtime.sessions, tenant_id) as second:
            second.execute(edit, {"v": str(vectors[ids[5]]), "at": now, "id": ids[5]})
            second.commit()
        assert _faiss_ids(runtime, flat, tenant_id, "who waters the ferns", 10)[0] == ids[5]
        heard = notices_heard(runtime)
        first.commit()
    if ran_for_s > OWN_LATE_EDIT.total_seconds():  # found through its own notice
        await_notices(runtime, heard + 1)
    question = "where is Zara's passport"
    found = _faiss_ids(runtime, flat, tenant_id, question, 10)
    assert found[0] == ids[3]
    assert found == _brute_force(runtime, tenant_id, runtime.queries.embed(question), 10)


def test_faiss_results_respect_type_metadata_and_status_filters(client: TestClient, flat: FaissIndexes) -> None:
    memories = [
        {"content": f"Trip note {i}: the hotel in Porto was lovely", "user_id": "u", "metadata": {"trip": i % 2}}
        for i in range(20)
    ] + [{"content": "Semantic: Porto is in Portugal", "user_id": "u", "type": "semantic"}]
    ids = client.post("/v1/memories", json={"memories": memories}).json()["ids"]
    client.delete(f"/v1/memories/{ids[0]}")  # soft delete: status 'deleted'
    body = {"query": "hotel in Porto", "user_id": "u", "k": 20, "filters": {"trip": 0}}
    results = client.post("/v1/search", json=body).json()["results"]
    assert {r["metadata"]["trip"] for r in results} == {0} and len(results) == 9
    assert ids[0] not in {r["id"] for r in results}
    semantic = client.post("/v1/search", json={"query": "Porto", "user_id": "u", "types": ["semantic"]}).json()
    assert [r["id"] for r in semantic["results"]] == [ids[-1]]


def test_only_statements_that_change_vectors_invalidate() -> None:
    assert is_vector_write("INSERT INTO memories (id, tenant_id) VALUES (%(id)s, %(t)s)")
    assert is_vector_write("DELETE FROM memories WHERE memories.id = %(id_1)s")
    assert is_vector_write(
        "UPDATE memories SET embedding=%(embedding)s, embedding_model=%(m)s WHERE memories.id = %(id)s"
    )
    assert not is_vector_write(
        "UPDATE memories SET access_count=(memories.access_count + %(a)s) WHERE memories.id IN (1)"
    )
    assert not is_vector_write("SELECT id FROM memories WHERE embedding IS NULL")
    assert not is_vector_write("INSERT INTO memory_events (memory_id) VALUES (%(m)s)")


def _branches_run(session, query: SearchQuery, scope_rows: int | None, exact_share: float) -> list[bool]:  # type: ignore[no-untyped-def]
    """Which of dense_rows' two branches (HNSW, exact) read any memories."""
    return branches_run(
        session,
        lambda: dense_candidates(session, query, 10, scope_rows=scope_rows, exact_share=exact_share),
        "dense_rows",
        "memories",
    )


def test_pgvector_searches_a_small_share_of_the_table_exactly(runtime: Runtime, client: TestClient) -> None:
    """The exact branch runs only for a known scope under the share, and returns the true top 10."""
    _load(client)
    tenant_id = _tenant(runtime, client)
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE memories"))  # the table's row count the choice compares with
        table_rows = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'memories'")).scalar_one()
    assert table_rows >= 200
    for question in queries(4, seed=9):
        vector = runtime.queries.embed(question)
        query = SearchQuery(tenant_id=tenant_id, text=question, vector=vector, k=10, user_id="u")
        with runtime.sessions.begin() as session:
            session.execute(text("SET LOCAL hnsw.ef_search = 1"))  # HNSW would find 1 row, not 10
            session.execute(text("SET LOCAL hnsw.iterative_scan = off"))
            exact = dense_candidates(session, query, 10, scope_rows=200, exact_share=1.0)
            assert _branches_run(session, query, 200, 1.0) == [False, True]
            assert _branches_run(session, query, 200, 0.0) == [True, False]
            assert _branches_run(session, query, None, 1.0) == [True, False]
            assert _branches_run(session, query, int(table_rows) + 1, 1.0) == [True, False]
        assert [str(i) for i, _ in exact] == _brute_force(runtime, tenant_id, vector, 10), question


def test_a_large_scope_is_served_by_pgvector_until_its_faiss_index_is_built(
    runtime: Runtime, client: TestClient
) -> None:
    _load(client, 60)
    tenant_id = _tenant(runtime, client)
    indexes = FaissIndexes(10**9, 64, 8, 600, partial(confined_session, runtime.sessions), background_rows=10)
    question = queries(1, seed=7)[0]
    query = SearchQuery(tenant_id=tenant_id, text=question, vector=runtime.queries.embed(question), k=10, user_id="u")
    with threads_running(runtime, "vector_send(embedding)") as loaded_in, closing(indexes):
        with runtime.sessions.begin() as session:
            first = indexes.candidates(session, query, 10)  # 60 > 10 memories: pgvector answers
            assert [i for i, _ in first] == [i for i, _ in dense_candidates(session, query, 10)]
        deadline = time.monotonic() + 10
        while indexes.rebuilds == 0:
            assert time.monotonic() < deadline, "the background build never finished"
            time.sleep(0.05)
        assert loaded_in and threading.main_thread().name not in loaded_in
        assert _faiss_ids(runtime, indexes, tenant_id, question, 10) == _brute_force(
            runtime, tenant_id, query.embedding, 10
        )
