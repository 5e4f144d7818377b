"""Search latency at the HTTP boundary (query embedding included) and recall@10, per dense generator.

One throwaway service grows one user scope to each size; at each size the same distinct queries
(no cache hits) run against pgvector HNSW, FAISS and exact (a brute-force FAISS flat index), and
recall@10 compares each mode's final results with exact's. The last rows per size time searches that
each follow a single write into the scope (pgvector, then FAISS), an agent's store-then-recall
step: the in-process indexes are handed the write before the search, and then searches that each
follow an edit (pgvector, then FAISS). After the largest
size, the scope is consolidated (`POST /v1/jobs/consolidate`: keys for every episode, a summary
per session) and searched again, as a scope that the periodic sweep has reached is.
"""

import time

import httpx

from app.local_server import throwaway_runtime
from app.runtime import Runtime
from benchmarks.common import (
    SERVICE,
    USER,
    analyze,
    client_for,
    consolidate_scope,
    dense_mode,
    grow_to,
    latency_summary,
    wait_for_indexes,
)
from benchmarks.corpus import conversation_texts, distinct_queries

MODES = ("exact", "pgvector", "faiss")
AFTER_WRITE = "pgvector after a write"
FAISS_AFTER_WRITE = "faiss after a write"
AFTER_EDIT = "pgvector after an edit"
FAISS_AFTER_EDIT = "faiss after an edit"
# An edit rebuilds the scope's BM25 index on the next search (~0.2 s at 10k): fewer of them than
# of the other rows keep the benchmark's time in bounds.
EDITS = 50
CONSOLIDATED = "pgvector, consolidated"
WARM_UP = 20


def _timed_searches(client: httpx.Client, questions: list[str], k: int) -> tuple[list[float], list[list[str]]]:
    latencies, results = [], []
    for question in questions:
        started = time.perf_counter()
        response = client.post("/v1/search", json={"query": question, "user_id": USER, "k": k}).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        results.append([r["id"] for r in response.json()["results"]])
    return latencies, results


def _timed_search(client: httpx.Client, question: str, k: int) -> float:
    started = time.perf_counter()
    client.post("/v1/search", json={"query": question, "user_id": USER, "k": k}).raise_for_status()
    return (time.perf_counter() - started) * 1000


def _searches_after_changes(
    client: httpx.Client, questions: list[str], edit_questions: list[str], k: int
) -> tuple[list[float], list[float]]:
    """Each search timed right after one write into the same scope and, for each of
    `edit_questions`, one more right after that memory's content is edited (an agent correcting
    what it stored). The writes are hard-deleted after."""
    after_write, after_edit, written = [], [], []
    texts = conversation_texts(len(questions), seed=len(questions))
    for number, (text, question) in enumerate(zip(texts, questions, strict=True)):
        # Numbered: a text equal to one already stored could be deduplicated to that memory's id,
        # and the clean-up below would then delete a memory of the measured scope.
        memory = {"content": f"{text} ({number})", "user_id": USER, "session_id": "bench-after-write"}
        [memory_id] = client.post("/v1/memories", json=memory).raise_for_status().json()["ids"]
        written.append(memory_id)
        after_write.append(_timed_search(client, question, k))
        if number < len(edit_questions):
            edit = {"content": f"{text} ({number}, corrected)"}
            client.patch(f"/v1/memories/{memory_id}", json=edit).raise_for_status()
            after_edit.append(_timed_search(client, edit_questions[number], k))
    for memory_id in written:
        client.delete(f"/v1/memories/{memory_id}", params={"hard": "true"}).raise_for_status()
    return after_write, after_edit


def _recall(results: list[list[str]], exact: list[list[str]]) -> float:
    scores = [len(set(r) & set(e)) / max(1, len(e)) for r, e in zip(results, exact, strict=True)]
    return round(sum(scores) / len(scores), 4)


def measure_scope(
    client: httpx.Client, runtime: Runtime, size: int, n_queries: int, k: int
) -> list[dict[str, float | int | str]]:
    edits = min(EDITS, n_queries)
    questions = distinct_queries(WARM_UP + n_queries + edits, seed=size)
    warm, measured, edit_questions = questions[:WARM_UP], questions[WARM_UP:-edits], questions[-edits:]
    rows, exact_results = [], []
    for mode in MODES:
        with dense_mode(runtime, mode, runtime.settings.faiss_ef_search):
            _timed_searches(client, warm, k)  # connections, index build, buffer cache
            wait_for_indexes(runtime)  # a scope over LOCI_INDEX_BACKGROUND_ROWS builds in the background
            latencies, results = _timed_searches(client, measured, k)
        if mode == "exact":
            exact_results = results
        rows.append(
            {
                "memories": size,
                "mode": mode,
                **latency_summary(latencies),
                "recall@10": _recall(results, exact_results),
            }
        )
    with dense_mode(runtime, "pgvector", runtime.settings.faiss_ef_search):  # an empty query cache again
        after_write, after_edit = _searches_after_changes(client, measured, edit_questions, k)
    rows.append({"memories": size, "mode": AFTER_WRITE, **latency_summary(after_write), "recall@10": None})
    with dense_mode(runtime, "faiss", runtime.settings.faiss_ef_search):
        _timed_searches(client, warm, k)  # the index's first build
        wait_for_indexes(runtime)
        faiss_after_write, faiss_after_edit = _searches_after_changes(client, measured, edit_questions, k)
    rows.append({"memories": size, "mode": FAISS_AFTER_WRITE, **latency_summary(faiss_after_write), "recall@10": None})
    rows.append({"memories": size, "mode": AFTER_EDIT, **latency_summary(after_edit), "recall@10": None})
    rows.append({"memories": size, "mode": FAISS_AFTER_EDIT, **latency_summary(faiss_after_edit), "recall@10": None})
    return rows


def measure_consolidated(
    client: httpx.Client, runtime: Runtime, size: int, n_queries: int, k: int
) -> dict[str, float | int | str]:
    counts = consolidate_scope(client, runtime)
    questions = distinct_queries(n_queries + WARM_UP, seed=size + 1)  # none of the earlier rows' queries
    with dense_mode(runtime, "pgvector", runtime.settings.faiss_ef_search):
        _timed_searches(client, questions[:WARM_UP], k)
        wait_for_indexes(runtime)
        latencies, _ = _timed_searches(client, questions[WARM_UP:], k)
    mode = f"{CONSOLIDATED} ({counts.get('keys', 0)} keys, {counts.get('summaries', 0)} summaries)"
    return {"memories": size, "mode": mode, **latency_summary(latencies), "recall@10": None}


def run(sizes: list[int], n_queries: int, k: int = 10) -> list[dict[str, float | int | str]]:
    rows: list[dict[str, float | int | str]] = []
    with throwaway_runtime(**SERVICE) as (url, key, runtime), client_for(url, key) as client:
        current = 0
        for size in sorted(sizes):
            grow_to(client, size, current)
            current = size
            analyze(runtime)
            rows += measure_scope(client, runtime, size, n_queries, k)
        rows.append(measure_consolidated(client, runtime, current, n_queries, k))
    return rows
