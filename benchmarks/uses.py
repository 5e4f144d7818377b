"""What counting searches' hits as uses costs the searches that follow (`loci bench uses`).

Every search counts its hits as uses (access_count, last_accessed_at: forgetting reads them), and a
thread writes the counts every second. One scope is loaded and vacuumed, then searched (distinct
queries, through HTTP); then rounds of counted uses are written as that thread writes them (200
random hits a flush), with autovacuum off on `memories`, as on a large table where it waits for a
fifth of the rows to be dead; then the same searches run again (their query vectors embedded
again). Reported: the write-ahead log a flush writes, the new row versions it leaves in `memories`
(each one, when the page has no room for it, enters every index of the table, HNSW included, and
every later scan visits it until a vacuum), and search latency and the pages of `memories` read
before and after.
"""

import random
import time
from typing import Any

import httpx
from sqlalchemy import Connection, text

from app.local_server import throwaway_runtime
from app.query_cache import QueryEmbeddings
from app.runtime import Runtime
from benchmarks.common import SERVICE, USER, analyze, client_for, grow_to, latency_summary
from benchmarks.corpus import distinct_queries

HITS_PER_FLUSH = 200
# A backend reports its statistics within 10 s once idle (PGSTAT_IDLE_INTERVAL): read them after that.
STATS_SETTLE_S = 11
_PAGES_READ = text(
    "SELECT heap_blks_hit + heap_blks_read + idx_blks_hit + idx_blks_read FROM pg_statio_user_tables "
    "WHERE relname = 'memories'"
)


def _searched(client: httpx.Client, runtime: Runtime, questions: list[str], settle_s: float) -> dict[str, Any]:
    """Latency of the searches and the pages of `memories` (heap and indexes) they read."""
    time.sleep(settle_s)  # what came before is counted before
    with runtime.engine.connect() as conn:
        before = conn.execute(_PAGES_READ).scalar()
    latencies = []
    for question in questions:
        started = time.perf_counter()
        client.post("/v1/search", json={"query": question, "user_id": USER, "k": 10}).raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    time.sleep(settle_s)
    with runtime.engine.connect() as conn:
        after = conn.execute(_PAGES_READ).scalar()
    return {**latency_summary(latencies), "memories_pages_per_search": round(float(after - before) / len(questions))}


def _row_versions(conn: Connection) -> dict[str, int]:
    """Updates of `memories` so far, and those that were not HOT (a new entry in every index)."""
    updated, hot = conn.execute(
        text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'memories'")
    ).one()
    return {"memories_updates": updated, "memories_updates_not_hot": updated - hot}


def _uses_counted(conn: Connection) -> int:
    return int(
        conn.execute(
            text("SELECT coalesce(sum(access_count), 0) FROM memories WHERE user_id = :u"), {"u": USER}
        ).scalar()
    )


def run(memories: int, flushes: int, queries: int, settle_s: float = STATS_SETTLE_S) -> dict[str, Any]:
    rng = random.Random(5)
    with throwaway_runtime(**SERVICE) as (url, key, runtime), client_for(url, key) as client:
        grow_to(client, memories, 0)
        analyze(runtime, vacuum=True)
        questions = distinct_queries(queries + 20, seed=memories)
        _searched(client, runtime, questions[:20], settle_s)  # connections, the in-process indexes, the buffer cache
        runtime.access_counts.flush()
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER TABLE memories SET (autovacuum_enabled = false)"))
            conn.execute(text("VACUUM memories"))
            tenant_id, ids = conn.execute(
                text("SELECT tenant_id, array_agg(id) FROM memories WHERE user_id = :u GROUP BY tenant_id"), {"u": USER}
            ).one()
        fresh = _searched(client, runtime, questions[20:], settle_s)
        runtime.access_counts.flush()
        time.sleep(settle_s)
        with runtime.engine.connect() as conn:
            versions_before = _row_versions(conn)
            counted_before = _uses_counted(conn)
            wal_start = conn.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar()
        for _ in range(flushes):
            runtime.access_counts.record(tenant_id, rng.sample(ids, HITS_PER_FLUSH))
            runtime.access_counts.flush()
        time.sleep(settle_s)
        with runtime.engine.connect() as conn:
            wal = conn.execute(
                text("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), :w)"), {"w": wal_start}
            ).scalar()
            versions = {k: v - versions_before[k] for k, v in _row_versions(conn).items()}
            counted = _uses_counted(conn) - counted_before
        runtime.queries = QueryEmbeddings(runtime.embedder, runtime.settings.query_cache_size)  # embedded again
        used = _searched(client, runtime, questions[20:], settle_s)
    return {
        "memories": memories,
        "flushes": flushes,
        "hits_per_flush": HITS_PER_FLUSH,
        "uses_counted": counted,
        "wal_kb_per_flush": round(float(wal) / flushes / 1024, 1) if flushes else None,
        **versions,
        "search_before": fresh,
        "search_after": used,
    }
