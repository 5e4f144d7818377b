"""The BM25 baseline: tokenisation and exact Okapi scores on a three-document corpus."""

import math

import pytest

from eval.systems.bm25 import BM25System, tokenize
from eval.units import Unit


def units(*texts: str) -> list[Unit]:
    return [Unit(f"u{i}", "s", t) for i, t in enumerate(texts)]


def test_tokenize_lowercases_drops_stop_words_and_stems() -> None:
    assert tokenize("The dogs are RUNNING, aren't they?") == ["dog", "run"]
    assert tokenize("Caroline's 2023 paintings") == ["carolin", "2023", "paint"]


def test_scores_match_the_okapi_formula_by_hand() -> None:
    bm25 = BM25System()
    bm25.index(units("the cat sat", "dog dog dog", "a cat and a dog"))
    # lengths after stop words: 2, 3, 2 (avg 7/3); "dog" is in 2 of 3 documents
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    d1 = idf * 3 * 2.2 / (3 + 1.2 * (0.25 + 0.75 * 3 / (7 / 3)))
    d2 = idf * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / (7 / 3)))
    assert bm25.scores("dogs?") == pytest.approx([0.0, d1, d2])
    assert (d1, d2) == pytest.approx((0.69597, 0.49918), abs=1e-5)
    assert bm25.search("dog", 2) == ["u1", "u2"]


def test_shorter_documents_win_on_equal_term_frequency() -> None:
    bm25 = BM25System()
    bm25.index(units("cat " + "filler words " * 5, "cat", "unrelated text"))
    assert bm25.search("cat", 3) == ["u1", "u0", "u2"]


def test_speaker_names_are_searchable() -> None:
    bm25 = BM25System()
    bm25.index([Unit("a", "s", "I love hiking", name="Melanie"), Unit("b", "s", "I love hiking", name="Caroline")])
    assert bm25.search("What does Caroline love?", 1) == ["b"]
