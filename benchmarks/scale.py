"""Search at tenant scale (`loci bench scale --memories 1000000`): bulk-loaded generated memories.

Embedding a million texts through the API would take about an hour of this machine, so rows are
written straight into Postgres with binary COPY: generated conversation text (the search
benchmark's corpus) and generated unit vectors, each a real embedding of one of a few thousand
corpus texts plus noise, so the vectors cluster like real ones do rather than spreading uniformly.
A row's vector is not its text's embedding: this measures latency, not retrieval quality. The
HNSW and GIN indexes are dropped for the load and built afterwards, as a bulk import would.

The tenant is split into users of `per_user` memories each; searches go through the REST API,
query embedding included, scoped to one user and tenant-wide (no user_id), with pgvector and
FAISS as the dense generator. A scope over LOCI_INDEX_BACKGROUND_ROWS has its in-process indexes
built in the background, as the service would; each run waits for them before it is timed.
The database gets 4 GB of shared buffers and the HNSW index is read into them after the load
(pg_prewarm), as a server that has been searching a while would have it: latency is measured
warm, not the first minutes after a restart.
"""

import json
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
from pgvector.psycopg import register_vector
from sqlalchemy import text

from app.local_server import throwaway_runtime
from app.runtime import Runtime
from benchmarks.common import SERVICE, USER, analyze, client_for, dense_mode, latency_summary, wait_for_indexes
from benchmarks.corpus import conversation_texts, distinct_queries
from memory_types import content_hash

CENTRES = 2_000  # real embeddings the generated vectors cluster around
NOISE = 0.35  # norm of the noise added to a centre, relative to the centre's norm of 1
CHUNK = 50_000
SESSION_TURNS = 50
WARM_UP = 10
# No job worker: its periodic sweep would consolidate the generated sessions (their event times are
# in the past) while the searches run. No request deadline: the first search of a scope builds its
# in-process indexes, which at this scale takes longer than the default deadline.
SCALE_SERVICE = {**SERVICE, "worker_in_process": False, "request_timeout_s": 3600.0, "embedded_shared_buffers": "4GB"}
COLUMNS = (
    "id, tenant_id, user_id, session_id, type, content, content_hash, embedding, embedding_model, event_at, valid_from"
)
# Dropped for the load and rebuilt after it, as in migrations/versions/0001_initial_schema.py.
BULK_INDEXES = {
    "memories_embedding_idx": "CREATE INDEX memories_embedding_idx ON memories USING hnsw (embedding vector_cosine_ops)",
    "memories_tsv_idx": "CREATE INDEX memories_tsv_idx ON memories USING gin (content_tsv)",
    "memory_keys_embedding_idx": "CREATE INDEX memory_keys_embedding_idx ON memory_keys USING hnsw (embedding vector_cosine_ops)",
    "memory_keys_tsv_idx": "CREATE INDEX memory_keys_tsv_idx ON memory_keys USING gin (text_tsv)",
}
GENERATED_KEYS = """INSERT INTO memory_keys (id, tenant_id, memory_id, kind, text, embedding)
SELECT gen_random_uuid(), tenant_id, id, 'keyword',
       split_part(content, ' ', 1) || ' ' || split_part(content, ' ', 2) || ' ' || split_part(content, ' ', 4),
       embedding
FROM memories"""
"""A keyword key per memory, as consolidation makes one per episode (speaker first, then words of
the turn): three of the memory's words, and the memory's own vector in place of the key text's."""


def user_of(position: int, per_user: int) -> str:
    """Users are `bench` (the first), then `bench-1`, `bench-2`, ..."""
    number = position // per_user
    return USER if number == 0 else f"{USER}-{number}"


def generated_vectors(centres: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors near randomly chosen centres (cosine to the centre about 0.94 with NOISE 0.35)."""
    picked = centres[rng.integers(0, len(centres), count)]
    noise = rng.standard_normal(picked.shape).astype(np.float32)
    noise *= NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    vectors = picked + noise
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _rows(
    tenant_id: uuid.UUID, texts: list[str], centres: np.ndarray, per_user: int, model: str
) -> Iterator[tuple[Any, ...]]:
    rng = np.random.default_rng(7)
    started = time.time()
    for start in range(0, len(texts), CHUNK):
        vectors = generated_vectors(centres, min(CHUNK, len(texts) - start), rng)
        for offset, vector in enumerate(vectors):
            i = start + offset
            content = texts[i]
            at = datetime.fromtimestamp(started - (len(texts) - i) * 60.0, UTC)
            yield (
                uuid.uuid4(), tenant_id, user_of(i, per_user), f"s{i // SESSION_TURNS}", "episodic", content,
                content_hash(content), vector, model, at, at,
            )  # fmt: skip


def bulk_load(
    runtime: Runtime, tenant_id: uuid.UUID, memories: int, per_user: int, keys: bool = False
) -> dict[str, float]:
    """COPY the generated rows in (with `keys`, a generated key per memory too), then build the
    indexes; returns the seconds each phase took."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    corpus = conversation_texts(memories)
    centres = runtime.embedder.embed(corpus[:CENTRES]).astype(np.float32)
    timings["embed_centres_s"] = time.perf_counter() - started
    raw = runtime.engine.raw_connection()
    try:
        conn = raw.driver_connection
        register_vector(conn)
        with conn.cursor() as cursor:
            for name in BULK_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
            started = time.perf_counter()
            with cursor.copy(f"COPY memories ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(
                    ["uuid", "uuid", "text", "text", "varchar", "text", "text", "vector", "text", "timestamptz", "timestamptz"]
                )  # fmt: skip
                for row in _rows(tenant_id, corpus, centres, per_user, runtime.embedder.model_name):
                    copy.write_row(row)
            conn.commit()
            timings["copy_s"] = time.perf_counter() - started
            if keys:
                started = time.perf_counter()
                cursor.execute(GENERATED_KEYS)
                conn.commit()
                timings["keys_s"] = time.perf_counter() - started
            cursor.execute("SET maintenance_work_mem = '4GB'")  # the HNSW graph of 1M vectors needs ~2 GB
            for name, ddl in BULK_INDEXES.items():
                started = time.perf_counter()
                cursor.execute(ddl)
                conn.commit()
                timings[f"build_{name}_s"] = time.perf_counter() - started
    finally:
        raw.close()
    analyze(runtime)
    timings["prewarm_s"] = prewarm(runtime)
    return {name: round(seconds, 1) for name, seconds in timings.items()}


def prewarm(runtime: Runtime) -> float:
    """Read the HNSW indexes into shared buffers (~2 GB each at 1M); returns the seconds it took."""
    started = time.perf_counter()
    with runtime.engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
        conn.execute(text("SELECT pg_prewarm('memories_embedding_idx'), pg_prewarm('memory_keys_embedding_idx')"))
    return time.perf_counter() - started


def _search(client: httpx.Client, question: str, user_id: str | None) -> float:
    body: dict[str, Any] = {"query": question, "k": 10}
    if user_id is not None:
        body["user_id"] = user_id
    started = time.perf_counter()
    client.post("/v1/search", json=body).raise_for_status()
    return (time.perf_counter() - started) * 1000


def measure(client: httpx.Client, runtime: Runtime, n_queries: int, memories: int) -> list[dict[str, Any]]:
    rows = []
    per_run = n_queries + WARM_UP + 1
    runs = [(mode, scope) for mode in ("pgvector", "faiss") for scope in (("user", USER), ("tenant", None))]
    questions = distinct_queries(per_run * len(runs), seed=memories)
    for number, (mode, (scope, user_id)) in enumerate(runs):
        asked = questions[number * per_run : (number + 1) * per_run]  # no run reuses another's queries
        with dense_mode(runtime, mode, runtime.settings.faiss_ef_search):
            first_ms = _search(client, asked[0], user_id)  # in-process indexes of the scope built here...
            built_s = wait_for_indexes(runtime)  # ... or, over LOCI_INDEX_BACKGROUND_ROWS, in the background
            for question in asked[1 : WARM_UP + 1]:
                _search(client, question, user_id)
            latencies = [_search(client, question, user_id) for question in asked[WARM_UP + 1 :]]
        rows.append(
            {
                "memories": memories,
                "scope": scope,
                "mode": mode,
                "first_search_ms": round(first_ms, 1),
                "background_build_s": round(built_s, 1),
                **latency_summary(latencies),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # progress: a run at 1M takes a while
    return rows


def run(memories: int, per_user: int, n_queries: int, keys: bool = False) -> dict[str, Any]:
    with throwaway_runtime(**SCALE_SERVICE) as (url, key, runtime), client_for(url, key) as client:
        with runtime.engine.connect() as conn:
            tenant_id = conn.execute(text("SELECT id FROM tenants")).scalar_one()
        load = bulk_load(runtime, tenant_id, memories, per_user, keys)
        print(json.dumps(load), file=sys.stderr, flush=True)
        searches = measure(client, runtime, n_queries, memories)
    return {"memories": memories, "per_user": per_user, "keys": keys, "load": load, "searches": searches}
