"""`loci eval locomo|longmemeval` end to end on the small fixtures with the BM25 baseline."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import eval.runner
from eval.cli import eval_app
from eval.systems import RetrievalSystem, SystemUnavailable


@pytest.fixture()
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Real systems, except that mem0 is always unavailable; records which systems were opened."""
    real = eval.runner.open_system
    names: list[str] = []

    @contextmanager
    def open_system(name: str, url: str | None = None, api_key: str | None = None) -> Iterator[RetrievalSystem]:
        names.append(name)
        if name == "mem0":
            raise SystemUnavailable("mem0 is not installed (test)")
        with real(name, url, api_key) as system:
            yield system

    monkeypatch.setattr(eval.runner, "open_system", open_system)
    return names


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(eval_app, list(args))
    assert result.exit_code == 0, result.output
    return result


def rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "per_question.jsonl").read_text().splitlines()]


def test_locomo_writes_summary_rows_report_and_plots(tmp_path: Path, locomo_mini: Path, opened: list[str]) -> None:
    out = tmp_path / "run"
    result = invoke("locomo", "--data", str(locomo_mini), "--split", "all", "--systems", "bm25,mem0", "--out", str(out))
    for name in (
        "summary.json",
        "per_question.jsonl",
        "report.md",
        "recall_at_k.png",
        "recall_by_category.png",
        "latency.png",
    ):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "locomo" and summary["split"] == "all"
    assert summary["questions"]["total"] == 7
    assert summary["questions"]["scored"] == 6
    assert summary["questions"]["no_valid_evidence"] == 1
    bm25 = summary["systems"]["bm25"]
    for key in ("recall@1", "recall@50", "session_recall@5", "hit@10", "mrr", "ndcg@10"):
        assert set(bm25[key]) == {"overall", "by_category"}, key
    assert set(bm25["recall@10"]["by_category"]) == {"1", "2", "3", "4", "5"}
    assert isinstance(bm25["tokens@5"], float) and set(bm25["latency_ms"]) == {"p50", "p95"}
    # five units per conversation at most: every evidence turn is within the top 50
    assert bm25["recall@50"]["overall"] == 1.0
    assert summary["systems"]["mem0"] == {"skipped": "mem0 is not installed (test)"}
    puppy = next(r for r in rows(out) if r["episode"] == "conv-44")
    assert puppy["retrieved"][0] == "D1:1" and puppy["ranks"] == [1] and puppy["metrics"]["recall@1"] == 1.0
    report = (out / "report.md").read_text()
    assert "Category 5 (adversarial, not in overall)" in report
    assert "**mem0**: mem0 is not installed (test)" in report
    assert "recall@10" in result.output


def test_resume_reuses_matching_cache_entries_only(tmp_path: Path, locomo_mini: Path, opened: list[str]) -> None:
    out = tmp_path / "run"
    args = ("locomo", "--data", str(locomo_mini), "--split", "all", "--systems", "bm25", "--out", str(out))
    invoke(*args)
    cached = out / "cache" / "bm25" / "conv-44.json"
    entry = json.loads(cached.read_text())
    entry["records"][0]["retrieved"] = ["D1:2"]
    cached.write_text(json.dumps(entry))

    opened.clear()
    invoke(*args, "--resume")
    assert opened == []  # everything came from the cache: the system was never built
    assert next(r for r in rows(out) if r["episode"] == "conv-44")["retrieved"] == ["D1:2"]

    invoke(*args)  # without --resume the episode is searched again
    assert next(r for r in rows(out) if r["episode"] == "conv-44")["retrieved"][0] == "D1:1"

    cached.write_text(json.dumps(entry))
    invoke(*args, "--resume", "--k", "1,100")  # a deeper search does not match the cached depth
    assert opened == ["bm25", "bm25"]
    assert next(r for r in rows(out) if r["episode"] == "conv-44")["retrieved"][0] == "D1:1"


def test_llm_mode_without_an_endpoint_says_it_skipped(
    tmp_path: Path, locomo_mini: Path, opened: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LOCI_LLM_BASE_URL", "LOCI_LLM_MODEL", "LOCI_LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = invoke(
        "locomo", "--data", str(locomo_mini), "--split", "all", "--systems", "bm25", "--out", str(tmp_path), "--llm"
    )
    assert "QA skipped: no LLM endpoint configured" in result.output
    assert not (tmp_path / "qa.jsonl").exists()


def test_bad_options_are_refused(tmp_path: Path, locomo_mini: Path) -> None:
    runner = CliRunner()
    base = ["locomo", "--data", str(locomo_mini), "--out", str(tmp_path)]
    assert runner.invoke(eval_app, [*base, "--systems", "bm25,zep"]).exit_code != 0
    assert runner.invoke(eval_app, [*base, "--k", "5,ten"]).exit_code != 0
    assert runner.invoke(eval_app, [*base, "--split", "train"]).exit_code != 0


def test_longmemeval_writes_both_averages(tmp_path: Path, longmemeval_mini: Path, opened: list[str]) -> None:
    out = tmp_path / "lme"
    invoke("longmemeval", "--data", str(longmemeval_mini), "--systems", "bm25,mem0", "--out", str(out))
    summary = json.loads((out / "summary.json").read_text())
    bm25 = summary["systems"]["bm25"]
    assert bm25["skip_abstention"]["questions"] == 2
    assert bm25["skip_abstention_and_no_gold_turn"]["questions"] == 1
    assert {"session_recall_any@50", "turn_recall_all@1", "turn_ndcg_any@30"} <= set(bm25["skip_abstention"]["metrics"])
    # one gold session in a three-session haystack is always within the top 3 distinct sessions
    assert bm25["skip_abstention"]["metrics"]["session_recall_any@3"]["overall"] == 1.0
    assert summary["systems"]["mem0"]["skipped"]
    assert len(rows(out)) == 3
    report = (out / "report.md").read_text()
    assert "Average skipping abstention questions (n = 2)" in report
    assert "and those with no gold user turn (n = 1)" in report
    for name in ("recall_any_at_k.png", "recall_by_type.png", "latency.png"):
        assert (out / name).stat().st_size > 0
