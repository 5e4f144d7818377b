"""`loci bench ingest|search|concurrency|memory|cpu|expansion|profile|jobs|uses|notices|scale|load|all`: each prints one JSON object, or markdown with --md.

Every command but `expansion` (arithmetic in process) starts its own throwaway service (temporary
embedded database, live uvicorn on loopback) and removes it afterwards. Run one at a time: they
measure a 2-core machine.
"""

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

bench_app = typer.Typer(help="Performance benchmarks (docs/performance.md).", no_args_is_help=True)

Md = Annotated[bool, typer.Option("--md", help="Print a markdown table instead of JSON.")]


def _table(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _emit(name: str, result: dict[str, Any] | list[dict[str, Any]], md: bool) -> None:
    rows = result if isinstance(result, list) else [result]
    print(f"### {name}\n\n{_table(rows)}\n" if md else json.dumps({name: result}))


def _ingest(memories: int) -> dict[str, Any]:
    from benchmarks import ingest

    return ingest.run(memories)


def _search(queries: int, large: bool) -> list[dict[str, Any]]:
    from benchmarks import search

    return search.run([1_000, 10_000, 100_000] if large else [1_000, 10_000], queries)


def _concurrency(memories: int, searches: int) -> list[dict[str, Any]]:
    from benchmarks import concurrency

    return concurrency.run(memories, [1, 8, 32], searches)


def _memory(memories: int) -> dict[str, Any]:
    from benchmarks import memory

    return memory.run(memories)


@bench_app.command("ingest")
def ingest_command(memories: Annotated[int, typer.Option(help="Texts to ingest.")] = 5_000, md: Md = False) -> None:
    """REST batch ingest (embedding included) against raw model.encode of the same texts."""
    _emit("ingest", _ingest(memories), md)


@bench_app.command("search")
def search_command(
    queries: Annotated[int, typer.Option(help="Measured queries per size and mode.")] = 300,
    large: Annotated[bool, typer.Option("--large", help="Also 100k memories (slow to load).")] = False,
    md: Md = False,
) -> None:
    """p50/p95/p99 at the HTTP boundary and recall@10, for pgvector, faiss and exact, at 1k and 10k;
    pgvector searches that each follow a write into the scope; and, at the largest size, searches
    of the scope once consolidated."""
    _emit("search", _search(queries, large), md)


@bench_app.command("concurrency")
def concurrency_command(
    memories: Annotated[int, typer.Option(help="Memories in the searched scope.")] = 10_000,
    searches: Annotated[int, typer.Option(help="Measured searches per concurrency level.")] = 320,
    md: Md = False,
) -> None:
    """Throughput and p95 with 1, 8 and 32 concurrent clients."""
    _emit("concurrency", _concurrency(memories, searches), md)


@bench_app.command("memory")
def memory_command(
    memories: Annotated[int, typer.Option(help="Memories to load (per-100k figures scale from this).")] = 20_000,
    md: Md = False,
) -> None:
    """Service RSS and Postgres PSS per 100k memories."""
    _emit("memory", _memory(memories), md)


@bench_app.command("cpu")
def cpu_command(
    memories: Annotated[int, typer.Option(help="Memories to ingest, then search.")] = 10_000,
    searches: Annotated[int, typer.Option(help="Measured searches.")] = 400,
    clients: Annotated[int, typer.Option(help="Concurrent search clients.")] = 8,
) -> None:
    """CPU ms per memory ingested and per search (API process vs Postgres) and bytes per memory."""
    from benchmarks import cpu_cost

    _emit("cpu", cpu_cost.run(memories, searches, clients), False)


@bench_app.command("expansion")
def expansion_command(
    scope_words: Annotated[int, typer.Option(help="Words the searched scope holds.")] = 3_000, md: Md = False
) -> None:
    """Word expansion's cost a query against the process vocabulary's size (no service needed)."""
    from benchmarks import expansion

    _emit("expansion", expansion.run(scope_words), md)


@bench_app.command("profile")
def profile_command(
    memories: Annotated[int, typer.Option(help="Memories in the searched scope.")] = 10_000,
    queries: Annotated[int, typer.Option(help="Measured searches.")] = 300,
    consolidated: Annotated[bool, typer.Option(help="Consolidate the scope (keys, summaries) first.")] = False,
    md: Md = False,
) -> None:
    """Per-step time of POST /v1/search: query embedding, each SQL step, the unattributed rest."""
    from benchmarks import profile

    _emit("profile", profile.run(memories, queries, consolidated), md)


@bench_app.command("jobs")
def jobs_command(
    memories: Annotated[int, typer.Option(help="Generated memories in one tenant (bulk COPY).")] = 100_000,
    per_user: Annotated[int, typer.Option(help="Memories per user of the tenant.")] = 10_000,
    users: Annotated[int, typer.Option(help="Users consolidated, then passed over twice by forget.")] = 3,
) -> None:
    """Seconds and write-ahead log of the sweep's jobs over one user: consolidate, then forget twice."""
    from benchmarks import jobs

    _emit("jobs", jobs.run(memories, per_user, users), False)


@bench_app.command("uses")
def uses_command(
    memories: Annotated[int, typer.Option(help="Memories in the searched scope.")] = 4_000,
    flushes: Annotated[int, typer.Option(help="Flushes of 200 counted hits between the two measures.")] = 130,
    queries: Annotated[int, typer.Option(help="Distinct searches timed before and after.")] = 100,
) -> None:
    """What writing searches' use counts costs: log per flush, row versions left, searches before and after."""
    from benchmarks import uses

    _emit("uses", uses.run(memories, flushes, queries), False)


@bench_app.command("notices")
def notices_command(
    memories: Annotated[int, typer.Option(help="Memories edited (one user's scope).")] = 2_000,
    rounds: Annotated[int, typer.Option(help="Rounds of each setting, after one warm-up round.")] = 5,
    seconds: Annotated[float, typer.Option(help="Seconds each edit-rate measure runs.")] = 3.0,
) -> None:
    """What the change notices cost writers: edit rates and a bulk edit with the trigger off and on."""
    from benchmarks import notices

    _emit("notices", notices.run(memories, rounds, seconds), False)


@bench_app.command("scale")
def scale_command(
    memories: Annotated[int, typer.Option(help="Generated memories in one tenant (bulk COPY).")] = 1_000_000,
    per_user: Annotated[int, typer.Option(help="Memories per user of the tenant.")] = 10_000,
    queries: Annotated[int, typer.Option(help="Measured searches per scope and mode.")] = 100,
    keys: Annotated[bool, typer.Option("--keys", help="A generated key per memory, as after consolidation.")] = False,
) -> None:
    """Search p50/p95 with generated vectors at tenant scale: one user's scope and tenant-wide, pgvector and FAISS."""
    from benchmarks import scale

    _emit("scale", scale.run(memories, per_user, queries, keys), False)


@bench_app.command("load")
def load_command(
    clients: Annotated[int, typer.Option(help="Concurrent clients.")] = 64,
    seconds: Annotated[float, typer.Option(help="Duration of the load.")] = 60.0,
    md: Md = False,
) -> None:
    """Mixed writes (~30 %) and searches for a fixed time, then every acknowledged write read back."""
    from benchmarks import load

    _emit("load", load.run(clients, seconds), md)


@bench_app.command("all")
def all_command(md: Md = False) -> None:
    """Every benchmark with its defaults, one after another."""
    runs: list[tuple[str, Callable[[], Any]]] = [
        ("ingest", lambda: _ingest(5_000)),
        ("search", lambda: _search(300, large=False)),
        ("concurrency", lambda: _concurrency(10_000, 320)),
        ("memory", lambda: _memory(20_000)),
    ]
    for name, run in runs:
        _emit(name, run(), md)
