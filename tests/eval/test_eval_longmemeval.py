"""LongMemEval: loading the official format and scoring against hand-worked rankings."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eval.longmemeval import load_longmemeval, parse_haystack_date
from eval.runner import QueryRecord, RunResult
from eval.score_longmemeval import score_longmemeval


def test_dates_parse() -> None:
    assert parse_haystack_date("2023/04/10 (Mon) 17:50") == datetime(2023, 4, 10, 17, 50, tzinfo=UTC)


def test_corpus_is_user_turns_named_by_session_and_position(longmemeval_mini: Path) -> None:
    single, assistant, abstention = load_longmemeval(longmemeval_mini)
    assert [u.id for u in single.units] == ["s1_1", "answer_s2_1", "answer_s2_3", "s3_1"]
    assert single.units[1].session_id == "answer_s2"
    assert single.units[1].timestamp == datetime(2023, 5, 10, 18, 30, tzinfo=UTC)
    assert single.units[1].name is None
    (question,) = single.questions
    assert question.gold_units == ("answer_s2_1",)
    assert question.gold_sessions == ("answer_s2",)
    assert question.category == "single-session-user" and not question.abstention
    assert question.asked_at == datetime(2023, 5, 30, 10, 0, tzinfo=UTC)
    # the only has_answer turn is the assistant's: no turn-level gold
    assert assistant.questions[0].gold_units == ()
    assert abstention.questions[0].abstention
    assert len(load_longmemeval(longmemeval_mini, limit=1)) == 1


def test_scores_and_both_averages(longmemeval_mini: Path) -> None:
    episodes = load_longmemeval(longmemeval_mini)
    retrieved = {
        "q-single": ["s3_1", "answer_s2_3", "answer_s2_1", "s1_1"],
        "q-assistant": ["answer_s5_1", "s4_1"],
        "q-single_abs": ["s6_1", "s7_1"],
    }
    records = [QueryRecord("x", qid, qid, ids, float(i + 1)) for i, (qid, ids) in enumerate(retrieved.items())]
    summary, rows = score_longmemeval(episodes, RunResult(records={"x": records}), ks=(1, 3))

    single = next(r for r in rows if r["question_id"] == "q-single")["metrics"]
    assert single["turn_recall_any@1"] == 0 and single["turn_recall_any@3"] == 1
    assert single["turn_ndcg_any@3"] == pytest.approx(0.63093, abs=1e-5)  # gold at rank 3: 1/log2(3)
    # sessions in rank order: s3, answer_s2, s1 -> gold at rank 2, which the reference weighs fully
    assert single["session_recall_any@1"] == 0 and single["session_ndcg_any@3"] == pytest.approx(1.0)

    system = summary["systems"]["x"]
    everyone = system["skip_abstention"]
    assert everyone["questions"] == 2
    m = everyone["metrics"]
    assert m["turn_recall_any@3"]["overall"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert m["turn_recall_all@1"]["overall"] == pytest.approx(0.5)  # (0 + vacuous 1) / 2
    assert m["session_recall_any@1"]["overall"] == pytest.approx(0.5)
    assert m["session_recall_any@1"]["by_category"] == {"single-session-assistant": 1.0, "single-session-user": 0.0}
    with_gold = system["skip_abstention_and_no_gold_turn"]
    assert with_gold["questions"] == 1
    assert with_gold["metrics"]["turn_recall_all@1"]["overall"] == 0
    assert with_gold["metrics"]["turn_recall_any@3"]["overall"] == 1
    # tokens over answerable questions: top 1 is 7 tokens in both; top 3 is 7+6+9 and 7+8
    assert system["tokens@1"] == pytest.approx(7.0)
    assert system["tokens@3"] == pytest.approx(18.5)
    assert system["latency_ms"]["p50"] == pytest.approx(2.0)
    assert summary["questions"] == {"total": 3, "abstention": 1, "no_gold_turn": 1}
