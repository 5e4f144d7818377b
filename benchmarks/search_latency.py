"""Search latency at the HTTP boundary (query embedding included) with N memories in one scope.

    python -m benchmarks.search_latency --memories 10000 --queries 300

Starts the service in process on a throwaway embedded database and a live uvicorn on loopback,
ingests generated texts through the REST batch API, then times POST /v1/search with httpx.
"""

import argparse
import json
import statistics
import time

import httpx
from rich.progress import track

from app.local_server import throwaway_service
from benchmarks.corpus import conversation_texts, queries


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(memories: int, n_queries: int, k: int) -> dict[str, float | int]:
    with throwaway_service() as (url, key):
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)
        texts = conversation_texts(memories)
        for start in track(range(0, memories, 1000), description="ingest"):
            chunk = enumerate(texts[start : start + 1000], start)
            batch = [{"content": t, "user_id": "bench", "session_id": f"s{i // 50}"} for i, t in chunk]
            client.post("/v1/memories", json={"memories": batch}).raise_for_status()
        asked = queries(n_queries)
        for q in asked[:20]:  # warm-up: connection pool, caches, HNSW pages
            client.post("/v1/search", json={"query": q, "user_id": "bench", "k": k})
        latencies = []
        for q in track(asked, description="search"):
            started = time.perf_counter()
            client.post("/v1/search", json={"query": q, "user_id": "bench", "k": k}).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    return {
        "memories": memories,
        "queries": n_queries,
        "k": k,
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(run(args.memories, args.queries, args.k)))


if __name__ == "__main__":
    main()
