"""What every benchmark shares: an authenticated client, bulk loading, waiting for embeddings, percentiles."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import httpx
from sqlalchemy import text

from app.db.tenancy import confined_session
from app.query_cache import QueryEmbeddings
from app.runtime import Runtime
from app.vector_changes import notify_vector_changes
from benchmarks.corpus import conversation_texts
from retrieval.faiss_index import FaissIndexes

USER = "bench"
BATCH = 1000  # the API's largest batch
# Settings of every benchmark's service: one key sends far more than the per-key rate limit allows.
SERVICE: dict[str, object] = {"rate_limit_per_s": 0}


def client_for(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_ms, 0.50), 2),
        "p95_ms": round(percentile(latencies_ms, 0.95), 2),
        "p99_ms": round(percentile(latencies_ms, 0.99), 2),
    }


def wait_for_embeddings(client: httpx.Client, poll_seconds: float = 0.05) -> None:
    """Until the embedding worker has embedded every deferred write of this tenant."""
    while client.get("/v1/stats").raise_for_status().json()["pending_embeddings"]:
        time.sleep(poll_seconds)


def load(client: httpx.Client, texts: list[str], first_index: int = 0) -> None:
    """Store texts through the REST batch API (sessions of 50 turns), embeddings done on return."""
    for start in range(0, len(texts), BATCH):
        batch = [
            {"content": t, "user_id": USER, "session_id": f"s{i // 50}"}
            for i, t in enumerate(texts[start : start + BATCH], first_index + start)
        ]
        client.post("/v1/memories", json={"memories": batch}).raise_for_status()
    wait_for_embeddings(client)


def grow_to(client: httpx.Client, size: int, current: int) -> None:
    """Add generated memories until the scope holds `size` (the same texts a fresh load of `size` has)."""
    load(client, conversation_texts(size)[current:], first_index=current)


def analyze(runtime: Runtime, vacuum: bool = False) -> None:
    """Fresh planner statistics after a bulk load, as autovacuum gives within a minute or so (with
    `vacuum`, after a bulk update: the dead row versions cleared too, as autovacuum would).

    Until then plans can be far off: on a just-loaded 10k scope the dense and index-key queries
    took 10 and 29 ms instead of 2 and 1.5 ms.
    """
    with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"{'VACUUM (ANALYZE)' if vacuum else 'ANALYZE'} memories, memory_keys"))


def consolidate_scope(
    client: httpx.Client, runtime: Runtime, poll_seconds: float = 0.5, timeout_s: float = 3600.0
) -> dict[str, int]:
    """Run the consolidation job on the benchmark's scope to the end (~10 minutes at 100k), then vacuum;
    returns the job's counts (keys, summaries).

    Consolidation marks every episode: a new version of each row (in every index), which autovacuum
    clears within minutes. The vacuum measures the scope once that is done; the first run of the
    consolidated search row at 100k, without it, had a p95 of 221 ms (docs/performance.md).
    """
    job_id = client.post("/v1/jobs/consolidate", json={"user_id": USER}).raise_for_status().json()["job_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").raise_for_status().json()
        if job["status"] == "succeeded":
            analyze(runtime, vacuum=True)
            return job["counts"]
        if job["status"] == "failed":
            raise RuntimeError(f"consolidation failed: {job['error']}")
        time.sleep(poll_seconds)
    raise TimeoutError(f"consolidation job {job_id} not done after {timeout_s:.0f} s")


def wait_for_indexes(runtime: Runtime) -> float:
    """Wait while an in-process index is built or checked in the background (a large scope's first
    searches go to Postgres meanwhile); returns the seconds waited."""
    started = time.perf_counter()
    while any(index.busy for index in runtime.indexes()):
        time.sleep(0.05)
    return time.perf_counter() - started


@contextmanager
def dense_mode(runtime: Runtime, mode: str, ef_search: int) -> Iterator[None]:
    """Switch the live service's dense generator: pgvector, faiss (settings' HNSW threshold) or exact.

    Each mode starts with an empty query-embedding cache, so no mode reuses another's query vectors.
    """
    s = runtime.settings
    runtime.queries = QueryEmbeddings(runtime.embedder, s.query_cache_size)
    if mode == "pgvector":
        runtime.dense_index = None
        yield
        return
    threshold = s.faiss_hnsw_threshold if mode == "faiss" else 2**62  # exact: a flat (brute-force) index
    runtime.dense_index = FaissIndexes(
        threshold,
        ef_search,
        s.faiss_max_scopes,
        s.faiss_recheck_seconds,
        partial(confined_session, runtime.sessions),
        s.index_background_rows,
    )
    stop = notify_vector_changes(runtime.engine, runtime.dense_index.changed, receives_inserts=True)
    try:
        yield
    finally:
        stop()
        runtime.dense_index.close()
        runtime.dense_index = None
