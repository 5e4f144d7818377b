"""Search throughput and p95 with 1, 8 and 32 concurrent HTTP clients on one loaded scope.

The clients run in a child process (asyncio, a kept-alive connection each: benchmarks/http_client.py),
so they do not share the server's GIL; on a 2-core machine they still share its CPUs, as a
co-located agent would.
"""

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from app.local_server import throwaway_runtime
from benchmarks.common import SERVICE, USER, analyze, client_for, grow_to, latency_summary
from benchmarks.corpus import distinct_queries
from benchmarks.http_client import KeptAliveConnection


async def _clients(url: str, key: str, shares: list[list[str]]) -> list[float]:
    latencies: list[float] = []

    async def one_client(questions: list[str]) -> None:
        connection = KeptAliveConnection(url, key, timeout_s=600)
        for question in questions:
            started = time.perf_counter()
            status, answer = await connection.request(
                "POST", "/v1/search", {"query": question, "user_id": USER, "k": 10}
            )
            if status != 200:
                raise RuntimeError(f"search answered {status}: {answer}")
            latencies.append((time.perf_counter() - started) * 1000)
        await connection.close()

    await asyncio.gather(*(one_client(share) for share in shares))
    return latencies


def _load_generator(url: str, key: str, shares: list[list[str]]) -> tuple[list[float], float]:
    started = time.perf_counter()
    latencies = asyncio.run(_clients(url, key, shares))
    return latencies, time.perf_counter() - started


def run(memories: int, levels: list[int], searches: int) -> list[dict[str, float | int]]:
    rows: list[dict[str, float | int]] = []
    with throwaway_runtime(**SERVICE) as (url, key, runtime):
        with client_for(url, key) as client:
            grow_to(client, memories, 0)
        # As the other benchmarks do: a load that outruns autovacuum's first ANALYZE left the first
        # level on plans for an empty table (1 client at p50 19.4 ms instead of 9.7, 2026-11-27).
        analyze(runtime)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as generator:
            for clients in levels:
                # Distinct questions across clients and levels: every search embeds its query.
                pool = distinct_queries(searches + 10 * clients, seed=clients)
                warm, measured = pool[: 10 * clients], pool[10 * clients :]
                generator.submit(_load_generator, url, key, [warm[i::clients] for i in range(clients)]).result()
                shares = [measured[i::clients] for i in range(clients)]
                latencies, elapsed = generator.submit(_load_generator, url, key, shares).result()
                rows.append(
                    {
                        "memories": memories,
                        "clients": clients,
                        "searches": len(latencies),
                        "throughput_per_s": round(len(latencies) / elapsed, 1),
                        **latency_summary(latencies),
                    }
                )
    return rows
