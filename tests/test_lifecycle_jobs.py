"""Consolidation, forgetting, feedback, restore and hard deletes, run as real background jobs."""

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.db.models import Memory
from app.jobs.consolidate import consolidate
from app.jobs.forget import DECISION_COLUMNS, archive_unchanged, decide
from app.jobs.queue import due_scopes
from app.runtime import Runtime
from app.services.tenants import authenticate
from retrieval import SearchQuery
from retrieval.candidates import key_candidates
from tests.conftest import branches_run, threads_running, waiting_on

CONVERSATION = [
    {"role": "user", "name": "Ann", "content": "I moved to Lisbon last spring. My favourite food is grilled sardines."},
    {"role": "assistant", "content": "Lisbon is lovely! Do you cook sardines at home?"},
    {
        "role": "user",
        "name": "Ann",
        "content": "Sometimes. I adopted a cat named Miso in May, she hates the grill smoke.",
    },
    {"role": "user", "name": "Ann", "content": "I work at a small design studio near the river."},
]


def wait_for(client: TestClient, job_id: str, timeout: float = 90.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def _run(client: TestClient, kind: str, **scope) -> dict:  # type: ignore[no-untyped-def, type-arg]
    response = client.post(f"/v1/jobs/{kind}", json=scope)
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["job_id"])
    assert job["status"] == "succeeded", job
    return job


def _age(runtime: Runtime, memory_id: str, days: float) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            text("UPDATE memories SET created_at = now() - make_interval(days => :d) WHERE id = :id"),
            {"d": days, "id": memory_id},
        )


def test_consolidation_extracts_facts_keys_and_a_summary(client: TestClient, runtime: Runtime) -> None:
    episode_ids = client.post(
        "/v1/messages", json={"user_id": "ann", "session_id": "s1", "messages": CONVERSATION}
    ).json()["ids"]
    job = _run(client, "consolidate", user_id="ann")
    counts = job["counts"]
    assert counts["episodes"] == 4
    assert counts["facts"] >= 4
    assert counts["summaries"] == 1
    assert counts["keys"] >= 4

    semantic = client.get("/v1/memories", params={"user_id": "ann", "type": "semantic", "limit": 100}).json()[
        "memories"
    ]
    facts = {
        (m["attributes"].get("subject"), m["attributes"].get("predicate"), m["attributes"].get("object"))
        for m in semantic
    }
    assert ("Ann", "lives in", "Lisbon last spring") in facts
    assert ("Ann", "adopted", "a cat named Miso in May") in facts
    assert any(m["content"].startswith("Summary of session s1") for m in semantic)

    with runtime.sessions() as session:
        derived = session.execute(
            text(
                "SELECT count(*) FROM memory_links WHERE kind = 'derived_from' AND dst_id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": episode_ids},
        ).scalar()
        keyed = session.execute(
            text("SELECT count(DISTINCT memory_id) FROM memory_keys WHERE memory_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": episode_ids},
        ).scalar()
        linked = session.execute(  # every link the job made starts at a memory it made
            text("SELECT count(*) FROM memory_links WHERE src_id = ANY(CAST(:ids AS uuid[]))"),
            {"ids": [m["id"] for m in semantic]},
        ).scalar()
    assert derived >= 5  # facts and the summary point back at their episodes
    assert keyed == 4
    assert counts["links"] == linked

    again = _run(client, "consolidate", user_id="ann")
    assert again["counts"].get("facts", 0) == 0 and again["counts"].get("episodes", 0) == 0


def test_keys_give_retrieval_another_way_in(client: TestClient, app_with, api_key: str) -> None:  # type: ignore[no-untyped-def]
    """The speaker is a key of each episode, so a question naming the person finds their turn even
    though the turn's text never says their name. By default (LOCI_USE_MEMORY_KEYS unset) keys are
    searched only where an LLM writes them: heuristic keys alone restate what the other views already
    score (docs/retrieval.md)."""
    turns = {
        "Zoe": "Just got back from the farmers market with a bag of plums.",
        "Kai": "Finally got it done, so proud!",
    }
    for name, content in turns.items():
        message = {"role": "user", "name": name, "content": content}
        client.post("/v1/messages", json={"user_id": "u1", "session_id": f"s-{name}", "messages": [message]})
    query = {"query": "What did Kai say?", "user_id": "u1", "types": ["episodic"], "k": 2}
    before = client.post("/v1/search", json=query).json()["results"]
    assert all(r["scores"]["keys"] is None for r in before)
    _run(client, "consolidate", user_id="u1")
    results = client.post("/v1/search", json=query).json()["results"]
    assert results[0]["content"] == turns["Kai"]
    assert results[0]["scores"]["keys"] is not None
    headers = {"Authorization": f"Bearer {api_key}"}
    with TestClient(app_with(use_memory_keys=None), headers=headers) as default:
        unsearched = default.post("/v1/search", json=query).json()["results"]
    assert all(r["scores"]["keys"] is None for r in unsearched)
    llm = {"use_memory_keys": None, "llm_base_url": "http://127.0.0.1:9/v1", "llm_model": "any"}
    with TestClient(app_with(**llm), headers=headers) as with_llm:
        searched = with_llm.post("/v1/search", json=query).json()["results"]
    assert searched[0]["content"] == turns["Kai"] and searched[0]["scores"]["keys"] is not None


def test_by_default_consolidation_writes_no_keys(client: TestClient, runtime: Runtime) -> None:
    """Without an LLM (and LOCI_USE_MEMORY_KEYS unset) no keys are searched, so none are written:
    facts and the summary still are, and every episode is marked consolidated."""
    client.post("/v1/messages", json={"user_id": "u7", "session_id": "s", "messages": CONVERSATION})
    with runtime.sessions() as session:
        tenant_id = authenticate(session, client.headers["Authorization"].split()[1]).tenant_id
    defaults = replace(runtime, settings=runtime.settings.model_copy(update={"use_memory_keys": None}))
    counts = consolidate(defaults, tenant_id, {"user_id": "u7"})
    assert counts["episodes"] == len(CONVERSATION) and counts["summaries"] == 1 and counts["facts"] >= 1
    assert counts.get("keys", 0) == 0
    with runtime.sessions() as session:
        keys = session.execute(
            text("SELECT count(*) FROM memory_keys WHERE tenant_id = :t AND user_id = 'u7'"), {"t": tenant_id}
        ).scalar()
    assert keys == 0


def _keys_of(runtime: Runtime, tenant_id: uuid.UUID, user_id: str) -> int:
    with runtime.sessions() as session:
        return session.execute(
            text("SELECT count(*) FROM memory_keys WHERE tenant_id = :t AND user_id = :u"),
            {"t": tenant_id, "u": user_id},
        ).scalar_one()


def test_episodes_consolidated_without_keys_get_them_once_keys_are_on(client: TestClient, runtime: Runtime) -> None:
    """An LLM configured (or keys turned on) after a scope was consolidated: the next consolidation
    keys the episodes it had left without, once, and stores no facts or summaries again."""
    client.post("/v1/messages", json={"user_id": "u8", "session_id": "s", "messages": CONVERSATION})
    with runtime.sessions() as session:
        tenant_id = authenticate(session, client.headers["Authorization"].split()[1]).tenant_id
    keys_off = replace(runtime, settings=runtime.settings.model_copy(update={"use_memory_keys": False}))
    assert consolidate(keys_off, tenant_id, {"user_id": "u8"})["episodes"] == len(CONVERSATION)
    assert consolidate(keys_off, tenant_id, {"user_id": "u8"}).get("episodes_keyed", 0) == 0
    assert _keys_of(runtime, tenant_id, "u8") == 0

    counts = consolidate(runtime, tenant_id, {"user_id": "u8"})
    assert counts["episodes_keyed"] == len(CONVERSATION) and counts["keys"] >= len(CONVERSATION), counts
    assert counts.get("episodes", 0) == counts.get("facts", 0) == counts.get("summaries", 0) == 0, counts
    assert _keys_of(runtime, tenant_id, "u8") == counts["keys"]
    hit = client.post("/v1/search", json={"query": "Where does Ann work?", "user_id": "u8", "k": 1}).json()
    assert hit["results"][0]["scores"]["keys"] is not None, hit

    again = consolidate(runtime, tenant_id, {"user_id": "u8"})
    assert again.get("episodes_keyed", 0) == again.get("keys", 0) == 0, again
    assert _keys_of(runtime, tenant_id, "u8") == counts["keys"]


def test_the_sweep_finds_scopes_consolidated_while_keys_were_off(client: TestClient, runtime: Runtime) -> None:
    """No new episode may ever come to a scope consolidated before an LLM was configured, so the
    sweep looks for unkeyed episodes itself once keys are searched; their consolidation keys them,
    and the scope is not due again."""
    client.post("/v1/messages", json={"user_id": "u10", "session_id": "s", "messages": CONVERSATION})
    with runtime.sessions() as session:
        tenant_id = authenticate(session, client.headers["Authorization"].split()[1]).tenant_id
    keys_off = replace(runtime, settings=runtime.settings.model_copy(update={"use_memory_keys": False}))
    due = (tenant_id, "u10", "consolidate")
    assert due not in due_scopes(runtime), "episodes written just now are not idle yet"
    consolidate(keys_off, tenant_id, {"user_id": "u10"})
    assert due not in due_scopes(keys_off)
    assert due in due_scopes(runtime)
    assert consolidate(runtime, tenant_id, {"user_id": "u10"})["episodes_keyed"] == len(CONVERSATION)
    assert due not in due_scopes(runtime)


def test_episodes_with_keys_but_no_mark_are_not_keyed_twice(client: TestClient, runtime: Runtime) -> None:
    """Episodes consolidated with keys before `keyed_at` existed (or imported with their keys) have
    keys and no mark: they are left as they are."""
    client.post("/v1/messages", json={"user_id": "u9", "session_id": "s", "messages": CONVERSATION})
    with runtime.sessions() as session:
        tenant_id = authenticate(session, client.headers["Authorization"].split()[1]).tenant_id
    written = consolidate(runtime, tenant_id, {"user_id": "u9"})["keys"]
    with runtime.sessions.begin() as session:
        session.execute(
            text("UPDATE memories SET keyed_at = NULL WHERE tenant_id = :t AND user_id = 'u9'"), {"t": tenant_id}
        )
    counts = consolidate(runtime, tenant_id, {"user_id": "u9"})
    assert counts.get("episodes_keyed", 0) == counts.get("keys", 0) == 0, counts
    assert _keys_of(runtime, tenant_id, "u9") == written


def test_consolidation_waits_for_an_episode_another_transaction_holds(client: TestClient, runtime: Runtime) -> None:
    """An episode held for a moment by another transaction (a search's use count being written) is
    consolidated with its session once the lock goes, not skipped until a later sweep."""
    ids = client.post("/v1/messages", json={"user_id": "u6", "session_id": "s", "messages": CONVERSATION}).json()["ids"]
    with runtime.engine.connect() as holder:
        holder_pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        holder.execute(text("SELECT 1 FROM memories WHERE id = :id FOR UPDATE"), {"id": ids[0]})
        job_id = client.post("/v1/jobs/consolidate", json={"user_id": "u6"}).json()["job_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("succeeded", "failed"):
            if waiting_on(runtime, holder_pid) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        holder.rollback()
    job = wait_for(client, job_id)
    assert job["status"] == "succeeded" and job["counts"]["episodes"] == 4, job


def test_keys_are_matched_densely_beside_the_bm25_index(client: TestClient, runtime: Runtime) -> None:
    """With the in-process BM25 index (the default) a search that uses keys matches them by their
    vectors only: keys are words and facts of the memory's own text, which BM25 already scores, and a
    full-text match over them is linear in the tenant's keys (one per episode once consolidated)."""
    client.post("/v1/messages", json={"user_id": "u2", "session_id": "s", "messages": CONVERSATION})
    _run(client, "consolidate", user_id="u2")
    query = {"query": "Where does Ann work?", "user_id": "u2", "k": 3}
    with (
        threads_running(runtime, "FROM memory_keys") as key_searches,
        threads_running(runtime, "text_tsv") as full_text,
    ):
        results = client.post("/v1/search", json=query).json()["results"]
    assert results[0]["content"] == CONVERSATION[3]["content"]
    assert any(r["scores"]["keys"] is not None for r in results)
    assert key_searches and not full_text


def test_keys_of_a_small_share_of_the_table_are_matched_exactly(client: TestClient, runtime: Runtime) -> None:
    """As for memories: where the scope is a small share of the keys table the nearest are found by
    reading the scope's keys, so every memory with a key comes back with its best key's cosine even
    with the HNSW search held to one candidate; an unknown scope size, or no share, keeps the graph.
    The memory's own filter still applies to the keys found: a memory below `min_trust` drops out."""
    client.post("/v1/messages", json={"user_id": "u3", "session_id": "s", "messages": CONVERSATION})
    _run(client, "consolidate", user_id="u3")
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE memory_keys"))  # the table's row count the choice compares with
    with runtime.sessions() as session:
        tenant_id = authenticate(session, client.headers["Authorization"].split()[1]).tenant_id
    question = "Where does Ann work?"
    query = SearchQuery(tenant_id=tenant_id, text=question, vector=runtime.queries.embed(question), k=10, user_id="u3")
    with runtime.sessions.begin() as session:
        best = dict(
            session.execute(
                text(
                    "SELECT k.memory_id, max(1 - (k.embedding <=> CAST(:q AS vector))) FROM memory_keys k "
                    "JOIN memories m ON m.id = k.memory_id WHERE m.tenant_id = :t AND m.user_id = 'u3' "
                    "GROUP BY k.memory_id"
                ),
                {"q": query.embedding_param, "t": tenant_id},
            ).all()
        )
        session.execute(text("SET LOCAL hnsw.ef_search = 1"))  # the graph would offer one key
        session.execute(text("SET LOCAL hnsw.iterative_scan = off"))
        exact = dict(key_candidates(session, query, 10, lexical=False, scope_rows=1, exact_share=1.0))
        with_full_text = dict(key_candidates(session, query, 10, lexical=True, scope_rows=1, exact_share=1.0))
        for scope_rows, share, branches in (
            (1, 1.0, [False, True]),
            (None, 1.0, [True, False]),
            (1, 0.0, [True, False]),
        ):
            run = partial(key_candidates, session, query, 10, False, scope_rows, share)
            assert branches_run(session, run, "key_dense", "memory_keys") == branches, (scope_rows, share)
        top = max(best, key=lambda m: best[m])
        session.execute(text("UPDATE memories SET trust = 0.1 WHERE id = :id"), {"id": top})
        trusted = dict(
            key_candidates(session, replace(query, min_trust=0.5), 10, lexical=False, scope_rows=1, exact_share=1.0)
        )
    assert trusted.keys() == best.keys() - {top}
    assert 1 < len(best) <= 10
    assert exact.keys() == best.keys()
    assert all(abs(exact[m] - best[m]) < 1e-6 for m in best)
    assert with_full_text.keys() == best.keys()  # the rank-fusion pipeline's list: the same keys, by text too


def test_unused_episode_is_archived_after_its_half_lives_and_can_be_restored(
    client: TestClient, runtime: Runtime
) -> None:
    old, recent = client.post(
        "/v1/memories",
        json={"memories": [
            {"content": "We talked about the weather", "user_id": "u1"},
            {"content": "We talked about the garden", "user_id": "u1"},
        ]},
    ).json()["ids"]  # fmt: skip
    _age(runtime, old, 70)  # 30-day half-life: 2^(-70/30) ~ 0.2, below the 0.25 threshold
    _age(runtime, recent, 20)

    dry = _run(client, "forget", user_id="u1", dry_run=True)
    assert dry["counts"]["archived"] == 1 and dry["counts"]["decayed"] == 1
    assert client.get(f"/v1/memories/{old}").json()["status"] == "active"

    real = _run(client, "forget", user_id="u1")
    assert real["counts"]["archived"] == 1
    assert client.get(f"/v1/memories/{old}").json()["status"] == "archived"
    assert client.get(f"/v1/memories/{recent}").json()["status"] == "active"
    hits = client.post("/v1/search", json={"query": "weather", "user_id": "u1"}).json()["results"]
    assert old not in [h["id"] for h in hits]

    restored = client.post(f"/v1/memories/{old}/restore")
    assert restored.status_code == 200 and restored.json()["status"] == "active"
    assert client.post(f"/v1/memories/{old}/restore").status_code == 409
    ops = [e["op"] for e in client.get(f"/v1/memories/{old}/history").json()["events"]]
    assert ops == ["create", "archive", "restore"]


def test_use_and_importance_keep_memories(client: TestClient, runtime: Runtime) -> None:
    important, used = client.post(
        "/v1/memories",
        json={"memories": [
            {"content": "Passport number is in the safe", "user_id": "u1", "importance": 1.0},
            {"content": "Dentist is Dr Lee on Elm street", "user_id": "u1"},
        ]},
    ).json()["ids"]  # fmt: skip
    for memory_id in (important, used):
        _age(runtime, memory_id, 70)
    for _ in range(2):
        client.post("/v1/search", json={"query": "who is my dentist", "user_id": "u1", "k": 1})
    job = _run(client, "forget", user_id="u1")
    assert job["counts"]["archived"] == 0


def test_summary_reuses_the_stored_vectors_of_one_sentence_turns(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn of one sentence is summarised by the vector it is stored with (the same text); only
    the sentences of longer turns are embedded again. The real model runs; the test only listens."""
    client.post("/v1/messages", json={"user_id": "u5", "session_id": "s", "messages": CONVERSATION})
    embedded: list[str] = []
    embed = runtime.embedder.embed
    monkeypatch.setattr(runtime.embedder, "embed", lambda texts: embedded.extend(texts) or embed(texts))
    _run(client, "consolidate", user_id="u5")
    assert "Ann: I moved to Lisbon last spring." in embedded  # a sentence of a two-sentence turn
    assert "Ann: I work at a small design studio near the river." not in embedded  # a whole turn
    summaries = client.get("/v1/memories", params={"user_id": "u5", "type": "semantic", "limit": 100}).json()
    assert any(m["content"].startswith("Summary of session s") for m in summaries["memories"])


def test_forget_archives_only_what_is_unchanged_since_it_read(client: TestClient, runtime: Runtime) -> None:
    """The forget pass reads without locks, so a memory used or edited between its read and the
    archive is left active (the next pass decides again); the rest of the decisions go through."""
    used, edited, untouched = client.post(
        "/v1/memories",
        json={"memories": [{"content": f"old note {i}", "user_id": "u9"} for i in range(3)]},
    ).json()["ids"]
    for memory_id in (used, edited, untouched):
        _age(runtime, memory_id, 400)
    with runtime.sessions() as session:
        tenant_id = authenticate(session, client.headers["Authorization"].split()[1]).tenant_id
        rows = session.execute(select(*DECISION_COLUMNS).where(Memory.user_id == "u9")).all()
    decisions = decide(rows, datetime.now(UTC), runtime.settings.forget_threshold, None)
    assert len(decisions) == 3
    client.post("/v1/search", json={"query": "old note 0", "user_id": "u9", "k": 1})  # a use...
    runtime.access_counts.flush()  # ... written as the flush thread would
    assert client.patch(f"/v1/memories/{edited}", json={"importance": 0.9}).status_code == 200
    with runtime.sessions.begin() as session:
        done = archive_unchanged(session, tenant_id, decisions, {r.id: r for r in rows}, datetime.now(UTC))
    hit = client.get(f"/v1/memories/{used}").json()
    assert hit["access_count"] == 1, hit
    assert [d.memory_id for d in done] == [uuid.UUID(untouched)]
    statuses = {m: client.get(f"/v1/memories/{m}").json()["status"] for m in (used, edited, untouched)}
    assert statuses == {used: "active", edited: "active", untouched: "archived"}
    ops = [e["op"] for e in client.get(f"/v1/memories/{untouched}/history").json()["events"]]
    assert ops == ["create", "archive"]


def test_ttl_and_capacity(client: TestClient) -> None:
    client.post(
        "/v1/memories",
        json={
            "memories": [{"content": "temporary door code 1234", "user_id": "u1", "expires_at": "2001-01-01T00:00:00Z"}]
        },
    )
    assert _run(client, "forget", user_id="u1")["counts"]["expired"] == 1
    assert (
        client.get("/v1/memories", params={"user_id": "u1", "status": "archived"}).json()["memories"][0]["content"]
        == "temporary door code 1234"
    )


def test_procedure_feedback_and_useless_procedures(client: TestClient) -> None:
    [proc] = client.post(
        "/v1/memories",
        json={
            "type": "procedural",
            "content": "To deploy, run make deploy",
            "user_id": "u1",
            "attributes": {"trigger": "deploy", "steps": ["make deploy"]},
        },
    ).json()["ids"]
    ok = client.post(f"/v1/memories/{proc}/feedback", json={"outcome": "success", "note": "worked"})
    assert ok.status_code == 200 and ok.json()["attributes"]["successes"] == 1
    for _ in range(5):
        client.post(f"/v1/memories/{proc}/feedback", json={"outcome": "failure"})
    assert client.get(f"/v1/memories/{proc}").json()["attributes"]["failures"] == 5
    assert _run(client, "forget", user_id="u1")["counts"]["useless_procedure"] == 1
    assert client.get(f"/v1/memories/{proc}").json()["status"] == "archived"

    [episode] = client.post("/v1/memories", json={"content": "hello", "user_id": "u1"}).json()["ids"]
    assert (
        client.post(f"/v1/memories/{episode}/feedback", json={"outcome": "success"}).json()["error"]["code"]
        == "not_a_procedure"
    )
    assert client.post(f"/v1/memories/{proc}/feedback", json={"outcome": "meh"}).status_code == 422
    assert client.post(f"/v1/memories/{uuid.uuid4()}/feedback", json={"outcome": "success"}).status_code == 404


def test_near_identical_procedures_are_merged(client: TestClient) -> None:
    a, b = client.post(
        "/v1/memories",
        json={"memories": [
            {"type": "procedural", "content": "To reset the router, hold the button for ten seconds", "user_id": "u1", "attributes": {"successes": 2}},
            {"type": "procedural", "content": "To reset the router, hold its button for 10 seconds", "user_id": "u1", "attributes": {"successes": 1, "failures": 1}},
        ]},
    ).json()["ids"]  # fmt: skip
    assert a != b
    assert _run(client, "consolidate", user_id="u1")["counts"]["procedures_merged"] == 1
    keeper, other = client.get(f"/v1/memories/{a}").json(), client.get(f"/v1/memories/{b}").json()
    assert keeper["attributes"]["successes"] == 3 and keeper["attributes"]["failures"] == 1
    assert other["status"] == "superseded" and other["superseded_by"] == a


def test_job_validation_and_isolation(client: TestClient, app, new_key) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v1/jobs/consolidate", json={}).status_code == 422
    assert client.post("/v1/jobs/forget", json={"user_id": "u1", "dry_run": "maybe"}).status_code == 422
    assert client.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404
    job_id = client.post("/v1/jobs/forget", json={"user_id": "u1"}).json()["job_id"]
    with TestClient(app, headers={"Authorization": f"Bearer {new_key()}"}) as other:
        assert other.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.delete("/v1/memories").status_code == 422


def test_job_paths_with_the_wrong_method_are_405_naming_post_and_bad_ids_are_404(client: TestClient) -> None:
    for kind in ("consolidate", "forget"):
        for method in ("GET", "DELETE"):
            response = client.request(method, f"/v1/jobs/{kind}")
            assert response.status_code == 405, (method, kind, response.text)
            assert response.json()["error"]["code"] == "method_not_allowed"
            assert response.headers["Allow"] == "POST"
    job_id = client.post("/v1/jobs/forget", json={"user_id": "u1", "dry_run": True}).json()["job_id"]
    assert client.get(f"/v1/jobs/{job_id.upper()}").json()["job_id"] == job_id
    response = client.request("PUT", f"/v1/jobs/{job_id}")
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    for bad in ("not-a-job", "1234"):
        response = client.get(f"/v1/jobs/{bad}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", response.text


TABLES = {
    "memories": "SELECT count(*) FROM memories WHERE tenant_id = :t AND user_id = :u",
    "memory_keys": "SELECT count(*) FROM memory_keys WHERE memory_id = ANY(CAST(:ids AS uuid[]))",
    "memory_links": "SELECT count(*) FROM memory_links WHERE src_id = ANY(CAST(:ids AS uuid[])) OR dst_id = ANY(CAST(:ids AS uuid[]))",
    "memory_events": "SELECT count(*) FROM memory_events WHERE memory_id = ANY(CAST(:ids AS uuid[]))",
    "jobs": "SELECT count(*) FROM jobs WHERE tenant_id = :t AND scope->>'user_id' = :u",
    "content anywhere in events": "SELECT count(*) FROM memory_events WHERE tenant_id = :t AND (after::text LIKE '%sardines%' OR before::text LIKE '%sardines%')",
}


def test_hard_delete_of_a_user_leaves_zero_rows_in_every_table(client: TestClient, runtime: Runtime) -> None:
    client.post("/v1/messages", json={"user_id": "ann", "session_id": "s1", "messages": CONVERSATION})
    client.post("/v1/memories", json={"content": "Bob likes chess", "user_id": "bob", "type": "semantic"})
    _run(client, "consolidate", user_id="ann")
    with runtime.sessions() as session:
        tenant = session.execute(
            text("SELECT tenant_id FROM memories WHERE user_id = 'bob' ORDER BY created_at DESC LIMIT 1")
        ).scalar()
        ids = [
            str(r[0])
            for r in session.execute(
                text("SELECT id FROM memories WHERE tenant_id = :t AND user_id = 'ann'"), {"t": tenant}
            )
        ]
        before = {
            name: session.execute(text(sql), {"t": tenant, "u": "ann", "ids": ids}).scalar()
            for name, sql in TABLES.items()
        }
    assert all(count > 0 for count in before.values()), before

    response = client.delete("/v1/users/ann")
    assert response.status_code == 200 and response.json()["deleted"] == before["memories"]
    with runtime.sessions() as session:
        after = {
            name: session.execute(text(sql), {"t": tenant, "u": "ann", "ids": ids}).scalar()
            for name, sql in TABLES.items()
        }
    assert after == dict.fromkeys(TABLES, 0)
    assert len(client.get("/v1/memories", params={"user_id": "bob"}).json()["memories"]) == 1
