"""Sustained mixed load: N concurrent clients writing (~30 %) and searching (~70 %) for a fixed time,
then every acknowledged write read back, so a lost or corrupted write shows up as a number.

The clients run in a child process (asyncio + httpx) like the concurrency benchmark, so they do not
share the server's GIL. Everything stays on loopback and is bounded by the client count and the
duration; each request has a client timeout, so a hung server counts as errors instead of hanging.
"""

import asyncio
import multiprocessing
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import httpx

from app.local_server import throwaway_service
from benchmarks.common import SERVICE, USER, client_for, grow_to, latency_summary
from benchmarks.corpus import conversation_texts, queries

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
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients)
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def one_client(number: int) -> None:
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
                    body = {"content": content, "user_id": USER, "idempotency_key": f"load-{number}-{sent}"}
                    request = client.post("/v1/memories", json=body)
                else:
                    query = f"{rng.choice(questions)} ({number}.{sent})"
                    request = client.post("/v1/search", json={"query": query, "user_id": USER, "k": 10})
                started = time.perf_counter()
                try:
                    response = await request
                except httpx.HTTPError as exc:
                    outcome.errors += 1
                    _count(outcome.error_kinds, type(exc).__name__)
                    continue
                outcome.latencies_ms.append((time.perf_counter() - started) * 1000)
                outcome.kinds.append("write" if write else "search")
                if response.status_code >= 400:
                    outcome.errors += 1
                    _count(outcome.error_kinds, f"{response.status_code} {_error_code(response)}")
                elif write:
                    outcome.acknowledged[response.json()["ids"][0]] = content

        started = time.perf_counter()
        await asyncio.gather(*(one_client(n) for n in range(clients)))
        outcome.elapsed_s = time.perf_counter() - started
    return outcome


def _count(kinds: dict[str, int], kind: str) -> None:
    kinds[kind] = kinds.get(kind, 0) + 1


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
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
