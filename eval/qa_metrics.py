"""LoCoMo's QA answer score (token F1), reproducing its reference evaluation code.

Normalisation: drop commas, lowercase, strip punctuation, drop the words a/an/the/and,
collapse whitespace, then Porter-stem each token. Per category:
- 1 (multi-hop): prediction and answer are split on commas; each answer part takes its best
  F1 against any prediction part, and the parts are averaged;
- 2, 4 (temporal, single-hop): plain token F1;
- 3 (open-domain): token F1 against the answer's first ';'-separated alternative;
- 5 (adversarial): 1 if the prediction says "no information available" or "not mentioned".
"""

import re
import string
from collections import Counter

from retrieval.tokens import stem

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
ABSTAIN_PHRASES = ("no information available", "not mentioned")


def normalize_answer(text: str) -> str:
    text = text.replace(",", "").lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return [stem(w) for w in normalize_answer(text).split()]


def token_f1(prediction: str, truth: str) -> float:
    """Harmonic mean of token precision and recall after normalising and stemming both."""
    predicted, gold = _tokens(prediction), _tokens(truth)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def multi_answer_f1(prediction: str, truth: str) -> float:
    """Category 1: mean over the answer's comma parts of the best F1 against a prediction part."""
    parts = [p.strip() for p in prediction.split(",")]
    truths = [t.strip() for t in truth.split(",")]
    return sum(max(token_f1(p, t) for p in parts) for t in truths) / len(truths)


def abstains(prediction: str) -> bool:
    lowered = prediction.lower()
    return any(phrase in lowered for phrase in ABSTAIN_PHRASES)


def locomo_f1(prediction: str, answer: str, category: str | int) -> float:
    """The score of one prediction under LoCoMo's rule for its category."""
    category = str(category)
    if category == "5":
        return float(abstains(prediction))
    if category == "1":
        return multi_answer_f1(prediction, answer)
    if category == "3":
        answer = answer.split(";")[0].strip()
    if category in ("2", "3", "4"):
        return token_f1(prediction, answer)
    raise ValueError(f"unknown LoCoMo category {category!r}")
