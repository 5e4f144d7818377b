"""Where the time of POST /v1/search goes: query embedding, each SQL statement, and the rest.

SQL time comes from the engine's cursor events (per statement, grouped by what it does); query
embedding from a timing wrapper around the runtime's query-embedding cache; "unattributed" is the
HTTP time not spent in either (framework, thread-pool hops, JSON, commit, the client). The query
embedding runs alongside the tenant wall and BM25 (the search waits for it only after them), so
the steps overlap and "unattributed" is an underestimate by up to their sum.
"""

import statistics
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from typing import Any

import numpy as np
from sqlalchemy import event

from app.local_server import throwaway_runtime
from app.query_cache import QueryEmbeddings
from benchmarks.common import SERVICE, USER, analyze, client_for, consolidate_scope, grow_to
from benchmarks.corpus import distinct_queries
from retrieval.lexical_index import LexicalIndexes

# First match wins: (substring of the statement, step name).
STEPS = (
    ("key_hash", "api key lookup (first use of a key)"),
    ("set_config('role'", "tenant wall + key re-check"),
    ("dense_rows AS MATERIALIZED", "candidates + filtered cosines (one statement)"),
    ("memory_keys", "index-key candidates"),
    ("pre AS MATERIALIZED", "lexical candidates (postgres)"),
    ("proposed AS MATERIALIZED", "filter + cosines of the proposals"),
    ("embedding <=>", "dense candidates"),
    ("max(updated_at)", "scope stamp (in-process indexes)"),
    ("FROM memories WHERE tenant_id", "scope (re)build (in-process indexes)"),
    ("WHERE memories.id IN", "load hits"),
)


def _step(statement: str) -> str:
    return next((name for needle, name in STEPS if needle in statement), "other sql")


class _TimedLexical:
    """Stands in for runtime.lexical_index and records the in-process BM25 time (its SQL excluded: events time that)."""

    def __init__(self, inner: LexicalIndexes, record: Any, sql_ms: Any) -> None:
        self._inner, self._record, self._sql_ms = inner, record, sql_ms

    def scores(self, session: Any, query: Any) -> Any:
        started, sql_before = time.perf_counter(), self._sql_ms()
        try:
            return self._inner.scores(session, query)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000 - (self._sql_ms() - sql_before)
            self._record("lexical BM25 (in process)", elapsed_ms / 1000)


class _TimedQueries:
    """Stands in for runtime.queries and records how long each query embedding took (submit to vector;
    the search overlaps it with its lexical side, so it is not all waiting)."""

    def __init__(self, inner: QueryEmbeddings, record: Any) -> None:
        self._inner, self._record = inner, record

    def submit(self, query: str) -> "Future[np.ndarray]":
        started = time.perf_counter()
        future = self._inner.submit(query)
        future.add_done_callback(lambda _: self._record("query embedding", time.perf_counter() - started))
        return future


def run(memories: int, n_queries: int, consolidated: bool = False) -> list[dict[str, Any]]:
    """`consolidated`: the scope is consolidated (keys, summaries) and vacuumed before the searches."""
    per_request: dict[str, float] = defaultdict(float)
    samples: dict[str, list[float]] = defaultdict(list)

    def record(step: str, seconds: float) -> None:
        per_request[step] += seconds * 1000

    def sql_ms() -> float:
        return sum(ms for step, ms in per_request.items() if step != "query embedding")

    def before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["loci_profile_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        started = conn.info.pop("loci_profile_started", None)
        # Only the request's own thread: background threads (access counts, workers) run alongside.
        if started is not None and threading.current_thread().name.startswith("AnyIO worker"):
            record(_step(statement), time.perf_counter() - started)

    with throwaway_runtime(**SERVICE) as (url, key, runtime), client_for(url, key) as client:
        grow_to(client, memories, 0)
        analyze(runtime)
        if consolidated:
            consolidate_scope(client, runtime)
        queries, lexical_index = runtime.queries, runtime.lexical_index
        runtime.queries = _TimedQueries(runtime.queries, record)  # type: ignore[assignment]
        if runtime.lexical_index is not None:
            runtime.lexical_index = _TimedLexical(runtime.lexical_index, record, sql_ms)  # type: ignore[assignment]
        event.listen(runtime.engine, "before_cursor_execute", before)
        event.listen(runtime.engine, "after_cursor_execute", after)
        questions = distinct_queries(n_queries + 20, seed=memories)
        for i, question in enumerate(questions):
            per_request.clear()
            started = time.perf_counter()
            client.post("/v1/search", json={"query": question, "user_id": USER, "k": 10}).raise_for_status()
            total = (time.perf_counter() - started) * 1000
            if i < 20:  # warm-up
                continue
            for step, ms in per_request.items():
                samples[step].append(ms)
            samples["unattributed"].append(total - sum(per_request.values()))
            samples["HTTP total"].append(total)
        runtime.queries, runtime.lexical_index = queries, lexical_index  # the runtime closes the real ones
    return [
        {
            "memories": memories,
            "consolidated": consolidated,
            "step": step,
            "in_searches": len(values),
            "p50_ms": round(statistics.median(values), 2),
            "p95_ms": round(float(np.percentile(values, 95)), 2),
            "mean_ms": round(statistics.fmean(values), 2),
        }
        for step, values in samples.items()
    ]
