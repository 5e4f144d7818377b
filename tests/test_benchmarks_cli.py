"""The benchmark plumbing that needs no running service: CLI mount, statistics, output formats."""

import json

import numpy as np
from typer.testing import CliRunner

from app.cli import _mount_optional, cli
from benchmarks.cli import _emit, _table
from benchmarks.common import latency_summary, percentile
from benchmarks.corpus import distinct_queries
from benchmarks.scale import generated_vectors, user_of
from benchmarks.search import _recall


def test_bench_is_mounted_with_every_benchmark() -> None:
    _mount_optional()
    result = CliRunner().invoke(cli, ["bench", "--help"])
    assert result.exit_code == 0
    for command in (
        "ingest",
        "search",
        "concurrency",
        "memory",
        "cpu",
        "expansion",
        "profile",
        "jobs",
        "uses",
        "notices",
        "scale",
        "all",
    ):
        assert command in result.output


def test_percentiles_and_recall() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0 and percentile(values, 0.95) == 95.0 and percentile(values, 1.0) == 100.0
    assert latency_summary(values) == {"p50_ms": 51.0, "p95_ms": 95.0, "p99_ms": 99.0}
    assert _recall([["a", "b"], ["c", "x"]], [["b", "a"], ["c", "d"]]) == 0.75


def test_distinct_queries_never_repeat() -> None:
    queries = distinct_queries(1000)
    assert len(set(queries)) == 1000 and queries == distinct_queries(1000)


def test_output_is_one_json_object_or_a_markdown_table(capsys) -> None:  # type: ignore[no-untyped-def]
    rows = [{"mode": "faiss", "p95_ms": 9.5}, {"mode": "pgvector", "p95_ms": 12.0}]
    _emit("search", rows, md=False)
    assert json.loads(capsys.readouterr().out) == {"search": rows}
    assert _table(rows).splitlines() == ["| mode | p95_ms |", "|---|---|", "| faiss | 9.5 |", "| pgvector | 12.0 |"]


def test_scale_vectors_are_unit_and_cluster_round_their_centres() -> None:
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((3, 384)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = generated_vectors(centres, 500, np.random.default_rng(2))
    assert vectors.shape == (500, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    nearest = (vectors @ centres.T).max(axis=1)
    assert nearest.min() > 0.9  # near one centre, not spread over the sphere
    assert [user_of(i, 10) for i in (0, 9, 10, 25)] == ["bench", "bench", "bench-1", "bench-2"]


def test_profile_runs_end_to_end_and_accounts_for_the_request() -> None:
    """The profile swaps timing wrappers into a live runtime; it must put the real parts back for
    the runtime to close (it once left a wrapper without `close` in place and failed at the end).
    Run on a consolidated scope: the search benchmark covers the plain one."""
    from benchmarks import profile

    rows = {row["step"]: row for row in profile.run(60, 4, consolidated=True)}
    assert rows["HTTP total"]["in_searches"] == 4
    assert rows["HTTP total"]["consolidated"] is True
    assert 0 < rows["query embedding"]["p50_ms"] < rows["HTTP total"]["p50_ms"]


def test_search_benchmark_runs_end_to_end_and_ends_on_the_consolidated_scope() -> None:
    """Every mode of a small scope, the searches after writes, then the scope consolidated through
    the job API: the last row names the keys the job made (none with the default settings: no LLM)."""
    from benchmarks import search

    rows = search.run([60], 4)
    assert [row["mode"] for row in rows[:-1]] == [
        *search.MODES,
        search.AFTER_WRITE,
        search.FAISS_AFTER_WRITE,
        search.AFTER_EDIT,
        search.FAISS_AFTER_EDIT,
    ]
    assert rows[-1]["mode"].startswith(f"{search.CONSOLIDATED} (0 keys, 2 summaries)")
    assert all(0 < row["p50_ms"] <= row["p99_ms"] for row in rows)


def test_scale_benchmark_runs_end_to_end_with_generated_keys() -> None:
    """The bulk load with a key per memory, its indexes rebuilt, then every scope and mode searched."""
    from benchmarks import scale

    result = scale.run(600, 200, 2, keys=True)
    assert result["keys"] and result["load"]["keys_s"] >= 0
    assert [(row["scope"], row["mode"]) for row in result["searches"]] == [
        ("user", "pgvector"), ("tenant", "pgvector"), ("user", "faiss"), ("tenant", "faiss"),
    ]  # fmt: skip
    assert all(0 < row["p50_ms"] <= row["p99_ms"] for row in result["searches"])


def test_jobs_benchmark_consolidates_then_forgets_the_aged_tenth() -> None:
    """Each user is consolidated (every episode, a summary per session of 50), then forget archives
    the memories aged past their half-lives and, passing again, finds nothing; the sweep's search
    for due scopes is timed."""
    from benchmarks import jobs

    result = jobs.run(400, 200, 2)
    runs = [(r["user_id"], r["job"], r.get("episodes"), r.get("examined"), r.get("archived")) for r in result["runs"]]
    assert runs == [
        ("bench", "consolidate", 200, None, None),
        ("bench", "forget, archiving", None, 204, 20),
        ("bench", "forget, nothing to do", None, 184, 0),
        ("bench-1", "consolidate", 200, None, None),
        ("bench-1", "forget, archiving", None, 204, 20),
        ("bench-1", "forget, nothing to do", None, 184, 0),
    ]
    # Consolidated without keys (no LLM here): only where keys are searched is either user due again.
    due = result["finding_due_scopes"]
    assert (due["as configured"]["consolidate"], due["keys searched"]["consolidate"]) == (0, 2), due


def test_uses_benchmark_writes_every_counted_hit_and_searches_before_and_after() -> None:
    from benchmarks import uses

    result = uses.run(memories=300, flushes=3, queries=5, settle_s=0)
    assert result["uses_counted"] == 3 * uses.HITS_PER_FLUSH  # every hit of every flush, no more
    assert result["wal_kb_per_flush"] > 0
    assert all(result[when]["p50_ms"] > 0 for when in ("search_before", "search_after")), result


def test_notices_benchmark_switches_the_trigger_and_measures_both_ways() -> None:
    from benchmarks import notices

    result = notices.run(200, rounds=1, seconds=0.3)
    assert result["bulk_edit_notices_off"] == 0 and result["bulk_edit_notices_on"] == 1
    assert result["bulk_edit_row_times_notices_off"] == 0 and result["bulk_edit_row_times_notices_on"] == 200
    assert result["edits_per_s_1_off"] > 0 and result["edits_per_s_8_on"] > 0 and result["bulk_edit_ms_ratio"] > 0
    assert {"notice_call_us", "notice_call_edited_us"} <= result.keys()


def test_expansion_benchmark_compares_a_scope_with_the_whole_vocabulary() -> None:
    from benchmarks import expansion

    rows = expansion.run(scope_words=500, repeats=3)
    assert [row["vocabulary_words"] for row in rows] == list(expansion.VOCABULARIES)
    assert all(row["scope_words"] == 500 and row["scope_p50_ms"] > 0 for row in rows)
