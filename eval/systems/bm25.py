"""Okapi BM25 (k1 = 1.2, b = 0.75) over the units, in numpy: the lexical baseline.

Tokens are lowercased alphanumeric runs, minus English stop words, Porter-stemmed (nltk's
stemmer needs no data download). IDF is the non-negative Lucene form
log(1 + (N - n + 0.5) / (n + 0.5)), so a term in most documents never lowers a score.
"""

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from nltk.stem import PorterStemmer

from eval.units import Unit

# nltk's English stop-word list, inlined because nltk's copy needs a corpus download.
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
    her hers herself it its itself they them their theirs themselves what which who whom this that
    these those am is are was were be been being have has had having do does did doing a an the and
    but if or because as until while of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then once here
    there when where why how all any both each few more most other some such no nor not only own
    same so than too very s t can will just don should now d ll m o re ve y ain aren couldn didn
    doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won wouldn
    """.split()
)
_WORD = re.compile(r"[a-z0-9]+")
_stemmer = PorterStemmer()


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer.stem(word)


def tokenize(text: str) -> list[str]:
    """Lowercase, split on non-alphanumerics, drop stop words, stem."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


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

    def search(self, query: str, k: int) -> list[str]:
        order = np.argsort(-self.scores(query), kind="stable")[:k]
        return [self._ids[i] for i in order]
