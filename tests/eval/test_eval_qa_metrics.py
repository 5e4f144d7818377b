"""LoCoMo QA F1, checked on hand-worked examples of each rule of its reference scorer."""

import pytest

from eval.qa_metrics import locomo_f1, normalize_answer, token_f1


def test_normalisation_drops_case_punctuation_commas_articles_and_and() -> None:
    assert normalize_answer("The Cat, and a  Dog!") == "cat dog"
    assert normalize_answer("An apple-pie; then the end.") == "applepie then end"
    assert normalize_answer("Andrew and Theo") == "andrew theo"  # only whole words are removed


def test_token_f1_stems_before_matching() -> None:
    assert token_f1("running dogs", "the dog runs") == 1.0  # run/dog on both sides
    assert token_f1("7 May 2023", "May 7, 2023") == 1.0
    # one of two tokens in common on each side: P = R = 1/2
    assert token_f1("blue car", "red car") == pytest.approx(0.5)
    # P = 1/3 (1 of "went", "to", "paris"), R = 1/1 -> 2 * (1/3) / (4/3) = 0.5
    assert token_f1("went to Paris", "Paris") == pytest.approx(0.5)
    assert token_f1("", "Paris") == 0.0
    assert token_f1("nothing", "Paris") == 0.0


def test_category_1_averages_the_best_match_of_each_answer_part() -> None:
    # answer parts: hiking -> 1 (matches "hiking"), swimming -> 0, painting -> 1: mean 2/3
    assert locomo_f1("painting, hiking", "hiking, swimming, painting", 1) == pytest.approx(2 / 3)
    # without the split the same strings would score 2 * (2/2 * 2/3) / (1 + 2/3) = 0.8
    assert token_f1("painting, hiking", "hiking, swimming, painting") == pytest.approx(0.8)


def test_category_3_scores_against_the_first_alternative() -> None:
    assert locomo_f1("psychology", "Psychology; counseling certification", 3) == 1.0
    assert locomo_f1("psychology", "Psychology; counseling certification", "4") == pytest.approx(0.5)


def test_category_5_scores_an_abstention() -> None:
    assert locomo_f1("Not mentioned in the conversation.", "anything", 5) == 1.0
    assert locomo_f1("Sorry, no information available about that", "anything", "5") == 1.0
    assert locomo_f1("She painted a rainbow", "a rainbow", 5) == 0.0


def test_unknown_category_is_refused() -> None:
    with pytest.raises(ValueError):
        locomo_f1("x", "x", 6)
