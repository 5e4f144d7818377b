"""Ranking metrics and aggregation, on examples small enough to work out by hand."""

import math

import pytest

from eval.aggregate import group_means, latency_summary
from eval.metrics import all_at_k, distinct, hit_at_k, ndcg_at_k, ranks_of, recall_at_k, reciprocal_rank
from eval.score_locomo import question_metrics
from eval.scoring import within_words
from eval.units import Question, Unit

RANKED = ["a", "b", "c", "d", "e"]


def test_recall_counts_the_fraction_of_gold_in_the_top_k() -> None:
    assert recall_at_k(RANKED, {"b", "d", "z"}, 1) == 0
    assert recall_at_k(RANKED, {"b", "d", "z"}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, {"b", "d", "z"}, 4) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, {"b", "d", "z"}, 50) == pytest.approx(2 / 3)


def test_recall_without_gold_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError):
        recall_at_k(RANKED, set(), 5)


def test_hit_and_all_follow_longmemeval_any_and_all() -> None:
    assert hit_at_k(RANKED, {"c", "e"}, 2) == 0
    assert hit_at_k(RANKED, {"c", "e"}, 3) == 1
    assert all_at_k(RANKED, {"c", "e"}, 3) == 0
    assert all_at_k(RANKED, {"c", "e"}, 5) == 1
    # empty gold, as LongMemEval's reference code treats it: any() is False, all() is True
    assert hit_at_k(RANKED, [], 5) == 0
    assert all_at_k(RANKED, [], 5) == 1


def test_reciprocal_rank_and_ranks() -> None:
    assert reciprocal_rank(RANKED, {"c", "e"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(RANKED, {"z"}) == 0
    assert ranks_of(RANKED, ["e", "z", "a"]) == [5, None, 1]


def test_ndcg_textbook_discount() -> None:
    # gold b (rank 2) and d (rank 4): DCG = 1/log2(3) + 1/log2(5); ideal = 1 + 1/log2(3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(RANKED, {"b", "d"}, 4) == pytest.approx(dcg / ideal)  # 0.6509
    assert ndcg_at_k(RANKED, {"b", "d"}, 4) == pytest.approx(0.65092, abs=1e-5)
    assert ndcg_at_k(RANKED, {"b", "d"}, 2) == pytest.approx((1 / math.log2(3)) / ideal)
    assert ndcg_at_k(RANKED, {"a"}, 10) == 1
    assert ndcg_at_k(RANKED, set(), 10) == 0


def test_ndcg_longmemeval_discount_weights_rank_two_fully() -> None:
    # reference dcg(): rel[0] + sum(rel[i] / log2(i + 1)) for 0-based i >= 1 -> ranks 2, 4 weigh 1, 1/2
    assert ndcg_at_k(RANKED, {"b", "d"}, 4, longmemeval=True) == pytest.approx((1 + 0.5) / (1 + 1))
    assert ndcg_at_k(RANKED, {"b", "d"}, 2, longmemeval=True) == pytest.approx(0.5)
    assert ndcg_at_k(RANKED, {"c"}, 5, longmemeval=True) == pytest.approx(1 / math.log2(3))


def test_distinct_keeps_first_seen_order_and_drops_none() -> None:
    assert distinct(["s2", "s1", None, "s2", "s3", "s1"]) == ["s2", "s1", "s3"]


def test_group_means_pool_questions_not_categories() -> None:
    rows = [("1", 1.0), ("1", 0.0), ("1", 0.5), ("2", 1.0), ("5", 0.0)]
    result = group_means(rows, {"1", "2"})
    # (1 + 0 + 0.5 + 1) / 4, not the mean of the category means (0.5 + 1) / 2
    assert result["overall"] == pytest.approx(0.625)
    assert result["by_category"] == {"1": pytest.approx(0.5), "2": 1.0, "5": 0.0}
    assert group_means([("5", 1.0)], {"1"})["overall"] is None


def test_latency_percentiles() -> None:
    summary = latency_summary([float(v) for v in range(1, 101)])
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p95"] == pytest.approx(95.05)
    assert latency_summary([]) == {"p50": None, "p95": None}


def test_recall_within_words_takes_what_fits_a_budget_in_rank_order() -> None:
    """The long first result overflows 6 words and is passed over; the two short ones after it fit.
    Recall@2 would count the long one instead."""
    units = {
        "long": Unit("long", "s", "one two three four five six seven eight"),
        "a": Unit("a", "s", "one two three"),
        "b": Unit("b", "s", "four five six"),
        "c": Unit("c", "s", "seven"),
    }
    question = Question("q", "?", "4", "", gold_units=("a", "b"), gold_sessions=("s",))
    metrics = question_metrics(question, ["long", "a", "b", "c", "not-a-unit"], units, ks=(2,))
    assert within_words(["long", "a", "b", "c"], units, 6) == ["a", "b"]
    assert metrics["recall@150w"] == 1.0 and metrics["recall@2"] == 0.5
    assert within_words(["long", "a"], units, 2) == []
