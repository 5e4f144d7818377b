"""`loci eval`: retrieval benchmarks over LoCoMo and LongMemEval (mounted by app.cli).

Each command loads the data, runs the chosen systems (cached per episode under OUT/cache),
then writes summary.json, per_question.jsonl, report.md and PNG plots to OUT and prints the
report.
"""

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown

from eval.locomo import SPLITS, load_locomo
from eval.longmemeval import K_DEFAULT as LME_K
from eval.longmemeval import load_longmemeval
from eval.runner import ResultCache, RunResult, run_systems
from eval.score_locomo import DEFAULT_K as LOCOMO_K
from eval.score_locomo import DEFAULT_OVERALL, NDCG_K, score_locomo
from eval.score_longmemeval import score_longmemeval
from eval.systems import SYSTEM_NAMES

eval_app = typer.Typer(help="Measure retrieval on LoCoMo and LongMemEval.", no_args_is_help=True, add_completion=False)
out_console = Console()
err_console = Console(stderr=True)

ALL_SYSTEMS = ",".join(SYSTEM_NAMES)
LOCOMO_K_TEXT = ",".join(map(str, LOCOMO_K))
LME_K_TEXT = ",".join(map(str, LME_K))

SystemsOpt = Annotated[str, typer.Option("--systems", help=f"Comma-separated, from: {', '.join(SYSTEM_NAMES)}.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Output directory (default eval-out/<dataset>...).")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Loci base URL; without it a local service is started.")]
KeyOpt = Annotated[str | None, typer.Option("--api-key", help="Loci API key (default LOCI_API_KEY).")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Reuse per-episode results cached in OUT/cache.")]


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise typer.BadParameter(f"--k wants comma-separated integers, got {text!r}") from exc
    if not ks or ks[0] < 1:
        raise typer.BadParameter("--k values must be >= 1")
    return ks


def parse_systems(text: str) -> list[str]:
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in SYSTEM_NAMES]
    if unknown or not names:
        raise typer.BadParameter(f"unknown systems {unknown}; choose from {', '.join(SYSTEM_NAMES)}")
    return names


def write_results(out: Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    with (out / "per_question.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def latencies(run: RunResult) -> dict[str, list[float]]:
    return {name: [r.latency_ms for r in records] for name, records in run.records.items()}


def finish(out: Path, run: RunResult) -> None:
    for name, reason in run.skipped.items():
        err_console.print(f"[yellow]{name} skipped:[/] {reason}")
    out_console.print(Markdown((out / "report.md").read_text()))
    out_console.print(f"\nResults in {out}/ (summary.json, per_question.jsonl, report.md, *.png)")


@eval_app.command()
def locomo(
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False, help="locomo10.json")],
    split: Annotated[str, typer.Option("--split", help="dev (tune here), test (report here) or all.")] = "dev",
    systems: SystemsOpt = ALL_SYSTEMS,
    k: Annotated[str, typer.Option("--k", help="Cut-offs for recall@k and hit@k.")] = LOCOMO_K_TEXT,
    out: OutOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    resume: ResumeOpt = False,
    include_adversarial: Annotated[
        bool, typer.Option("--include-adversarial", help="Pool category 5 into the overall figures.")
    ] = False,
    llm: Annotated[bool, typer.Option("--llm", help="Also answer with an LLM and report LoCoMo F1.")] = False,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL (.../v1).")] = None,
    llm_model: Annotated[str | None, typer.Option(help="Chat model name.")] = None,
    llm_key: Annotated[str | None, typer.Option(help="Key for the LLM endpoint.")] = None,
    qa_top_n: Annotated[int, typer.Option(help="Retrieved turns given to the LLM as context.")] = 10,
) -> None:
    """Evidence recall@k, hit@k, MRR, NDCG@10 and session recall on LoCoMo, per category."""
    if split not in (*SPLITS, "all"):
        raise typer.BadParameter(f"--split must be dev, test or all, not {split!r}")
    ks = parse_ks(k)
    names = parse_systems(systems)
    out = out or Path("eval-out") / f"locomo-{split}"
    out.mkdir(parents=True, exist_ok=True)
    overall = (*DEFAULT_OVERALL, "5") if include_adversarial else DEFAULT_OVERALL
    dataset = load_locomo(data, split)
    depth = max(max(ks), NDCG_K)
    run = run_systems(names, dataset.episodes, depth, ResultCache(out / "cache"), resume, url, api_key, err_console)
    summary, rows = score_locomo(dataset, split, run, ks, overall)
    if llm:
        from eval.qa_llm import answer_locomo, resolve_llm

        config = resolve_llm(llm_url, llm_model, llm_key)
        if config is None:
            err_console.print(
                "[yellow]QA skipped:[/] no LLM endpoint configured "
                "(pass --llm-url and --llm-model, or set LOCI_LLM_BASE_URL and LOCI_LLM_MODEL)."
            )
        else:
            scores, judged, qa_rows = answer_locomo(config, dataset.episodes, run, qa_top_n, overall)
            for name, score in scores.items():
                summary["systems"][name]["qa_f1"] = score
                summary["systems"][name]["qa_judge"] = judged[name]
            with (out / "qa.jsonl").open("w") as f:
                f.writelines(json.dumps(row) + "\n" for row in qa_rows)
    write_results(out, summary, rows)
    from eval.report import locomo_report  # matplotlib loads only when a report is made, not on `loci --help`

    locomo_report(summary, out, latencies(run))
    finish(out, run)


@eval_app.command()
def longmemeval(
    data: Annotated[
        Path, typer.Option("--data", exists=True, dir_okay=False, help="LongMemEval JSON (e.g. longmemeval_s.json).")
    ],
    systems: SystemsOpt = ALL_SYSTEMS,
    k: Annotated[str, typer.Option("--k", help="Cut-offs for recall_any/recall_all/ndcg_any.")] = LME_K_TEXT,
    depth: Annotated[
        int, typer.Option(help="Turns retrieved per question; deep enough for k distinct sessions.")
    ] = 200,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.")] = None,
    out: OutOpt = None,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    resume: ResumeOpt = False,
) -> None:
    """Session- and turn-level recall_any/recall_all/ndcg_any@k on LongMemEval, per question type."""
    ks = parse_ks(k)
    names = parse_systems(systems)
    out = out or Path("eval-out") / f"longmemeval-{data.stem}"
    out.mkdir(parents=True, exist_ok=True)
    episodes = load_longmemeval(data, limit)
    run = run_systems(
        names, episodes, max(depth, max(ks)), ResultCache(out / "cache"), resume, url, api_key, err_console
    )
    summary, rows = score_longmemeval(episodes, run, ks)
    write_results(out, summary, rows)
    from eval.report import longmemeval_report  # see locomo()

    longmemeval_report(summary, out, latencies(run))
    finish(out, run)
