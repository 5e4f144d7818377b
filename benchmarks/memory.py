"""Resident memory of the service (this process) and its Postgres processes, per 100k memories.

Measured at start (model loaded, empty database) and after loading N memories and searching them,
with pgvector and then with the FAISS index built. Per-100k figures scale the measured growth
linearly from N; the output labels them as extrapolated whenever N < 100k.
"""

import ctypes
import gc
from pathlib import Path

import psutil
from sqlalchemy import text

from app.local_server import throwaway_runtime
from app.runtime import Runtime
from benchmarks.common import SERVICE, USER, client_for, dense_mode, grow_to
from benchmarks.corpus import distinct_queries

MB = 1024 * 1024


def _pss(process: psutil.Process) -> int:
    """Proportional set size: shared pages (Postgres shared buffers) counted once across processes."""
    try:
        return process.memory_full_info().pss
    except (psutil.AccessDenied, psutil.NoSuchProcess, AttributeError):
        return process.memory_info().rss


def _postgres_processes(pgdata: Path) -> list[psutil.Process]:
    postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    return [postmaster, *postmaster.children(recursive=True)]


def _release_freed_memory() -> None:
    """Give freed heap back to the OS first, so RSS shows what is held, not the allocator's high-water mark."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: RSS then includes freed but cached memory
        pass


def _snapshot(runtime: Runtime) -> dict[str, float]:
    _release_freed_memory()
    service = psutil.Process()
    with runtime.engine.connect() as conn:
        disk = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return {
        "service_rss_mb": service.memory_info().rss / MB,
        "postgres_pss_mb": sum(_pss(p) for p in _postgres_processes(runtime.settings.pgdata)) / MB,
        "database_disk_mb": disk / MB,
    }


def run(memories: int, searches: int = 50) -> dict[str, float | int | str]:
    with throwaway_runtime(**SERVICE) as (url, key, runtime), client_for(url, key) as client:
        questions = distinct_queries(searches, seed=3)
        for q in questions[:5]:
            client.post("/v1/search", json={"query": q, "user_id": USER}).raise_for_status()
        base = _snapshot(runtime)
        grow_to(client, memories, 0)
        for q in questions:
            client.post("/v1/search", json={"query": q, "user_id": USER}).raise_for_status()
        loaded = _snapshot(runtime)
        with dense_mode(runtime, "faiss", runtime.settings.faiss_ef_search):
            for q in questions:
                client.post("/v1/search", json={"query": q, "user_id": USER}).raise_for_status()
            with_faiss = _snapshot(runtime)
    scale = 100_000 / memories
    return {
        "memories": memories,
        "per_100k": "measured" if memories == 100_000 else f"extrapolated linearly from {memories}",
        "base_service_rss_mb": round(base["service_rss_mb"], 1),
        "base_postgres_pss_mb": round(base["postgres_pss_mb"], 1),
        "service_rss_mb_per_100k": round((loaded["service_rss_mb"] - base["service_rss_mb"]) * scale, 1),
        "postgres_pss_mb_per_100k": round((loaded["postgres_pss_mb"] - base["postgres_pss_mb"]) * scale, 1),
        "faiss_rss_mb_per_100k": round((with_faiss["service_rss_mb"] - loaded["service_rss_mb"]) * scale, 1),
        "database_disk_mb_per_100k": round((loaded["database_disk_mb"] - base["database_disk_mb"]) * scale, 1),
    }
