"""Sustained mixed load: N concurrent clients writing (~30 %) and searching (~70 %) for a fixed time,
then every acknowledged write read back, so a lost or corrupted write shows up as a number.

The clients run in a child process (asyncio, one kept-alive connection each: benchmarks/http_client.py)
like the concurrency benchmark, so they do not share the server's GIL. Everything stays on loopback
and is bounded by the client count and the duration; each request has a client timeout, so a hung
server counts as errors instead of hanging.
"""

import asyncio
import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.local_server import throwaway_service
from benchmarks.common import SERVICE, USER, client_for, grow_to, latency_summary
from benchmarks.corpus import conversation_texts, queries
from benchmarks.http_client import TRANSPORT_ERRORS, KeptAliveConnection

WRITE_SHARE = 0.3
REQUEST_TIMEOUT_S = 30.0
SEED_MEMORIES = 1_000  # searches run against a scope that has something to find


@dataclass
class LoadOutcome:
    """What the load generator hands back across the process boundary (picklable)."""

    latencies_ms: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # "write" or "search", one per latency
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)  # "503 timeout", "ReadTimeout", ...
    acknowledged: dict[str, str] = field(default_factory=dict)  # id -> content written
    elapsed_s: float = 0.0


async def _drive(url: str, key: str, clients: int, seconds: float) -> LoadOutcome:
    outcome = LoadOutcome()
    deadline = time.monotonic() + seconds

    async def one_client(number: int) -> None:
        connection = KeptAliveConnection(url, key, REQUEST_TIMEOUT_S)
        rng = random.Random(number)
        questions = queries(50, seed=number)
        texts = conversation_texts(50, seed=1000 + number)
        sent = 0
        while time.monotonic() < deadline:
            sent += 1
            write = rng.random() < WRITE_SHARE
            # A per-request suffix keeps every query and content distinct: no cache hits, no dedup.
            if write:
                content = f"{rng.choice(texts)} [client {number} write {sent}]"
                path = "/v1/memories"
                body = {"content": content, "user_id": USER, "idempotency_key": f"load-{number}-{sent}"}
            else:
                path = "/v1/search"
                body = {"query": f"{rng.choice(questions)} ({number}.{sent})", "user_id": USER, "k": 10}
            started = time.perf_counter()
            try:
                status, answer = await connection.request("POST", path, body)
            except TRANSPORT_ERRORS as exc:
                outcome.errors += 1
                _count(outcome.error_kinds, type(exc).__name__)
                continue
            outcome.latencies_ms.append((time.perf_counter() - started) * 1000)
            outcome.kinds.append("write" if write else "search")
            if status >= 400:
                outcome.errors += 1
                _count(outcome.error_kinds, f"{status} {_error_code(answer)}")
            elif write:
                outcome.acknowledged[answer["ids"][0]] = content
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client(n) for n in range(clients)))
    outcome.elapsed_s = time.perf_counter() - started
    return outcome


def _count(kinds: dict[str, int], kind: str) -> None:
    kinds[kind] = kinds.get(kind, 0) + 1


def _error_code(answer: Any) -> str:
    try:
        return str(answer["error"]["code"])
    except (KeyError, TypeError):
        return "?"


def _load_generator(url: str, key: str, clients: int, seconds: float) -> LoadOutcome:
    return asyncio.run(_drive(url, key, clients, seconds))


def _by_kind(outcome: LoadOutcome) -> dict[str, dict[str, float]]:
    """Latency of writes and of searches apart, to tell whether one kind waits longer than the other."""
    by_kind: dict[str, list[float]] = {}
    for kind, latency in zip(outcome.kinds, outcome.latencies_ms, strict=True):
        by_kind.setdefault(kind, []).append(latency)
    return {kind: {"requests": len(values), **latency_summary(values)} for kind, values in sorted(by_kind.items())}


def _lost_writes(client: httpx.Client, acknowledged: dict[str, str]) -> int:
    """Acknowledged writes that cannot be read back with the content that was sent."""
    lost = 0
    for memory_id, content in acknowledged.items():
        response = client.get(f"/v1/memories/{memory_id}")
        if response.status_code != 200 or response.json()["content"] != content:
            lost += 1
    return lost


def run(clients: int, seconds: float) -> dict[str, object]:
    with throwaway_service(**SERVICE) as (url, key):
        with client_for(url, key) as client:
            grow_to(client, SEED_MEMORIES, 0)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as generator:
            outcome = generator.submit(_load_generator, url, key, clients, seconds).result()
        with client_for(url, key) as client:
            lost = _lost_writes(client, outcome.acknowledged)
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(outcome.latencies_ms),
        "throughput": round(len(outcome.latencies_ms) / outcome.elapsed_s, 1),
        **latency_summary(outcome.latencies_ms or [0.0]),
        "by_kind": _by_kind(outcome),
        "errors": outcome.errors,
        "error_kinds": outcome.error_kinds,
        "acknowledged": len(outcome.acknowledged),
        "lost_writes": lost,
    }
