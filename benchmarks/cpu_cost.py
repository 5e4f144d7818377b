"""CPU time per ingested memory and per search, split between the API process and Postgres, and
the bytes each memory takes on disk: the per-core costs docs/scaling.md multiplies out.

CPU time rather than wall time: these machines are shared, and other sessions' load stretches
wall-clock rates but not the CPU a request itself burns. Postgres CPU is the postmaster's live
processes plus its reaped children, read around the work. During ingest the loading client runs
in the API's process too (a small share: it only posts batches of 1000).
"""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import text

from app.local_server import throwaway_runtime
from app.runtime import Runtime
from benchmarks.common import SERVICE, analyze, client_for, grow_to
from benchmarks.concurrency import _load_generator
from benchmarks.corpus import distinct_queries
from benchmarks.memory import _postgres_processes

TABLES = ("memories", "memory_links", "memory_keys", "memory_events", "jobs")


def _postgres_cpu(pgdata: Path) -> float:
    processes = _postgres_processes(pgdata)
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    reaped = processes[0].cpu_times()
    return total + reaped.children_user + reaped.children_system


def _api_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _sizes(runtime: Runtime) -> dict[str, int]:
    with runtime.engine.connect() as conn:
        return {
            table: conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": table}).scalar_one()
            for table in TABLES
        }


def run(memories: int, searches: int, clients: int) -> dict[str, Any]:
    with throwaway_runtime(**SERVICE) as (url, key, runtime), client_for(url, key) as client:
        pgdata, empty = runtime.settings.pgdata, _sizes(runtime)
        api, pg, started = _api_cpu(), _postgres_cpu(pgdata), time.perf_counter()
        grow_to(client, memories, 0)
        ingest = {
            "wall_per_s": round(memories / (time.perf_counter() - started), 1),
            "api_cpu_ms_per_memory": round((_api_cpu() - api) / memories * 1000, 2),
            "pg_cpu_ms_per_memory": round((_postgres_cpu(pgdata) - pg) / memories * 1000, 2),
        }
        analyze(runtime)
        pool = distinct_queries(searches + 10 * clients, seed=99)
        warm, measured = pool[: 10 * clients], pool[10 * clients :]
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as generator:
            generator.submit(_load_generator, url, key, [warm[i::clients] for i in range(clients)]).result()
            api, pg = _api_cpu(), _postgres_cpu(pgdata)
            shares = [measured[i::clients] for i in range(clients)]
            latencies, elapsed = generator.submit(_load_generator, url, key, shares).result()
            search = {
                "clients": clients,
                "wall_per_s": round(len(latencies) / elapsed, 1),
                "api_cpu_ms_per_search": round((_api_cpu() - api) / len(latencies) * 1000, 2),
                "pg_cpu_ms_per_search": round((_postgres_cpu(pgdata) - pg) / len(latencies) * 1000, 2),
            }
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM memories"))
        loaded = _sizes(runtime)
    return {
        "memories": memories,
        "ingest": ingest,
        "search": search,
        "bytes_per_memory": {t: round((loaded[t] - empty[t]) / memories) for t in TABLES},
        "load_average": [round(x, 1) for x in psutil.getloadavg()],
    }
