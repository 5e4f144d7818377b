"""What word expansion costs a query as the process's vocabulary grows (retrieval/term_expansion.py).

The vocabulary is shared by every scope of a process; a query compares its words only with the
words its own scope holds (`ScopeWords`). This times `WordVectors.expansions` for a scope of a
fixed number of words in processes of growing vocabularies, and for a scope that holds the whole
vocabulary (what every query cost before scopes had their own rows). The comparison is memory
traffic, so the vectors are random unit vectors: their values do not change what is read.
Single-threaded BLAS, as the service runs it (app.runtime).
"""

import statistics
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from retrieval.term_expansion import ExpansionParams, ScopeWords, WordVectors

DIM = 384
QUERY = "alpha0 alpha1 alpha2 alpha3 alpha4"  # five known words, as in a typical question
VOCABULARIES = (5_000, 20_000, 100_000)


def _vocabulary(size: int, rng: np.random.Generator) -> WordVectors:
    def random_unit_vectors(texts: list[str]) -> np.ndarray:
        vectors = rng.standard_normal((len(texts), DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    words = WordVectors(random_unit_vectors, DIM, size)
    words.learn(f"alpha{i}" for i in range(size))
    while words.pending:
        time.sleep(0.01)
    return words


def _p50_ms(words: WordVectors, rows: np.ndarray, held: set[str], repeats: int) -> float:
    query, params = words.query_words(QUERY), ExpansionParams()
    words.expansions(query, rows, held, params)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        words.expansions(query, rows, held, params)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def run(scope_words: int = 3_000, repeats: int = 50) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    results = []
    with threadpool_limits(1, "blas"):
        for size in VOCABULARIES:
            words = _vocabulary(size, rng)
            _, stems = words.stems_from(0)
            held = set(stems[:scope_words])  # the scope's words, the query's among them
            results.append(
                {
                    "vocabulary_words": size,
                    "scope_words": min(scope_words, size),
                    "scope_p50_ms": _p50_ms(words, ScopeWords().rows(words, sorted(held)), held, repeats),
                    "whole_vocabulary_p50_ms": _p50_ms(words, np.arange(size), set(stems), repeats),
                }
            )
    return results
