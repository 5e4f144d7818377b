"""LoCoMo QA mode: answer each question from a system's retrieved turns with an LLM, score F1.

Any OpenAI-compatible chat endpoint works (POST {base_url}/chat/completions). The LLM is never
required: with no endpoint configured the runner prints why QA was skipped and goes on.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from rich.progress import track

from app.llm import LLMClient, LLMConfig, llm_config
from eval.aggregate import group_means
from eval.qa_metrics import locomo_f1
from eval.runner import RunResult
from eval.units import Episode, Question, Unit

PROMPT = (
    "Below are turns from a long conversation, each with the date of its session.\n\n{context}\n\n"
    "Answer the question in a short phrase, with exact words from the conversation where possible. "
    "Use the session dates to answer questions about time. If the conversation does not contain the "
    "answer, reply exactly: Not mentioned in the conversation.\n\nQuestion: {question}\nAnswer:"
)


def resolve_llm(url: str | None, model: str | None, api_key: str | None) -> LLMConfig | None:
    """Options first, then the service settings (LOCI_LLM_BASE_URL, LOCI_LLM_MODEL, LOCI_LLM_API_KEY)."""
    from app.settings import Settings

    settings = Settings()
    return llm_config(
        (url or settings.llm_base_url or "").rstrip("/") or None,
        model or settings.llm_model,
        api_key or settings.llm_api_key,
        settings.llm_timeout,
    )


JUDGE_PROMPT = (
    "Label an answer to a question about a conversation as CORRECT or WRONG. You get the question, the "
    "gold answer and the generated answer. Be generous: if the generated answer refers to the same "
    "thing, person, date or time period as the gold answer (in any wording or date format), it is "
    "CORRECT.\n\nQuestion: {question}\nGold answer: {gold}\nGenerated answer: {prediction}\n\n"
    "Reply with one word: CORRECT or WRONG."
)


def judge(client: LLMClient, question: Question, prediction: str) -> float:
    """LLM-judge accuracy (J) of one answer. Adversarial questions have no gold answer: there the
    LoCoMo rule decides (the answer must say the conversation does not mention it)."""
    if question.category == "5":
        return locomo_f1(prediction, question.answer, question.category)
    prompt = JUDGE_PROMPT.format(question=question.text, gold=question.answer, prediction=prediction)
    verdict = client.chat([{"role": "user", "content": prompt}]).strip().upper()
    return 1.0 if verdict.startswith("CORRECT") else 0.0


def context_lines(retrieved: Sequence[str], units: Mapping[str, Unit]) -> str:
    lines = []
    for unit_id in retrieved:
        unit = units.get(unit_id)
        if unit is not None:
            date = unit.timestamp.strftime("%d %B %Y") if unit.timestamp else "unknown date"
            lines.append(f"[{date}] {unit.document}")
    return "\n".join(lines)


def answer_locomo(
    config: LLMConfig, episodes: Sequence[Episode], run: RunResult, top_n: int, overall: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """({system: F1 by category}, {system: judge accuracy by category}, qa.jsonl rows) per system."""
    questions = {(e.id, q.id): q for e in episodes for q in e.questions}
    units = {e.id: {u.id: u for u in e.units} for e in episodes}
    scores: dict[str, Any] = {}
    judged: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    client = LLMClient(config)
    try:
        for system, records in run.records.items():
            values: list[tuple[str, float]] = []
            verdicts: list[tuple[str, float]] = []
            for r in track(records, description=f"QA with {system}"):
                q = questions[(r.episode, r.question_id)]
                context = context_lines(r.retrieved[:top_n], units[r.episode])
                prompt = PROMPT.format(context=context, question=q.text)
                prediction = client.chat([{"role": "user", "content": prompt}]).strip()
                f1 = locomo_f1(prediction, q.answer, q.category)
                correct = judge(client, q, prediction)
                values.append((q.category, f1))
                verdicts.append((q.category, correct))
                rows.append(
                    {
                        "system": system,
                        "question_id": q.id,
                        "category": q.category,
                        "question": q.text,
                        "answer": q.answer,
                        "prediction": prediction,
                        "f1": f1,
                        "judge": correct,
                    }
                )
            scores[system] = group_means(values, overall)
            judged[system] = group_means(verdicts, overall)
    finally:
        client.close()
    return scores, judged, rows
