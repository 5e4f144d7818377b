"""Okapi BM25 (k1 = 1.2, b = 0.75) over the units, in numpy: the lexical baseline.

Tokens are the service's own (retrieval/tokens.py: stop words out, Porter stems). IDF is the non-negative Lucene form
log(1 + (N - n + 0.5) / (n + 0.5)), so a term in most documents never lowers a score.
"""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from eval.units import Unit
from retrieval.tokens import tokenize


class BM25System:
    """An inverted index of per-term (document, weight) arrays; a query sums its terms' arrays."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._ids: list[str] = []
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def index(self, units: Sequence[Unit]) -> None:
        self._ids = [u.id for u in units]
        counts = [Counter(tokenize(u.document)) for u in units]
        lengths = np.array([sum(c.values()) for c in counts], dtype=float)
        average = lengths.mean() if len(lengths) and lengths.mean() > 0 else 1.0
        norm = self.k1 * (1 - self.b + self.b * lengths / average)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for doc, counter in enumerate(counts):
            for term, tf in counter.items():
                doc_list, tf_list = postings.setdefault(term, ([], []))
                doc_list.append(doc)
                tf_list.append(tf)
        n = len(units)
        self._postings = {}
        for term, (doc_list, tf_list) in postings.items():
            docs = np.array(doc_list)
            tfs = np.array(tf_list, dtype=float)
            idf = np.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            self._postings[term] = (docs, idf * tfs * (self.k1 + 1) / (tfs + norm[docs]))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed unit, in index order."""
        scores = np.zeros(len(self._ids))
        for term in tokenize(query):
            if term in self._postings:
                d, w = self._postings[term]
                scores[d] += w
        return scores

    def search(self, query: str, k: int, asked_at: datetime | None = None) -> list[str]:
        order = np.argsort(-self.scores(query), kind="stable")[:k]
        return [self._ids[i] for i in order]
