"""Query expansion: a question's words reach memories through related words the memories use."""

import time

import pytest
from fastapi.testclient import TestClient

from app.runtime import Runtime
from retrieval.term_expansion import ExpansionParams, ScopeWords, WordVectors, vocabulary_words
from retrieval.tokens import stem

MEMORIES = [
    "I baked a chocolate cake with strawberry frosting for my sister's birthday.",
    "The bakery on the corner sells desserts only at weekends.",
    "The router needs a firmware update before Friday.",
    "Our team meeting moved to Tuesday afternoon.",
    "I renewed my passport at the consulate last month.",
    "The car's left tyre keeps losing pressure.",
    "We adopted a grey cat from the shelter.",
]


def _expand(vocabulary: WordVectors, query: str, held: set[str], params: ExpansionParams) -> dict[str, float]:
    rows = ScopeWords().rows(vocabulary, sorted(held))
    return vocabulary.expansions(vocabulary.query_words(query), rows, held, params)


def _learned(vocabulary: WordVectors, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while vocabulary.pending:
        assert time.monotonic() < deadline, "words still pending"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def vocabulary(runtime: Runtime) -> WordVectors:
    words = WordVectors(runtime.embedder.embed, runtime.embedder.dim, max_words=1_000)
    words.read(MEMORIES)
    _learned(words)
    assert words.size == len({w for text in MEMORIES for w in vocabulary_words(text)})
    return words


def test_query_words_expand_to_related_words_the_scope_holds(vocabulary: WordVectors) -> None:
    # A word no memory uses is not embedded in the search's time: it expands to nothing, and stays unknown.
    assert vocabulary.query_words("Which puddings?").words == []
    assert vocabulary.pending == 0 and vocabulary.query_words("Which puddings?").words == []
    held = {stem(w) for text in MEMORIES for w in vocabulary_words(text)}
    params = ExpansionParams(weight=0.3, min_cosine=0.4, per_word=8, max_terms=16)
    expanded = _expand(vocabulary, "Which desserts did she make?", held, params)
    assert {stem("cake"), stem("chocolate")} <= expanded.keys()
    assert not expanded.keys() & {stem("router"), stem("passport"), stem("tyre")}
    assert all(0 < weight <= params.weight for weight in expanded.values())
    # Only terms the scope holds, never the query's own (BM25 scores those already).
    assert _expand(vocabulary, "Which desserts did she make?", held - {stem("cake")}, params).keys() == (
        expanded.keys() - {stem("cake")}
    )
    assert stem("cake") not in _expand(vocabulary, "chocolate cake", held, params)
    assert _expand(vocabulary, "Which desserts?", held, ExpansionParams(weight=0)) == {}
    assert len(_expand(vocabulary, "Which desserts?", held, ExpansionParams(max_terms=1))) == 1


def test_a_scope_is_compared_with_the_words_it_holds_as_both_grow(runtime: Runtime) -> None:
    words = WordVectors(runtime.embedder.embed, runtime.embedder.dim, max_words=1_000)
    words.learn(["cake", "cakes", "chocolate", "router"])
    _learned(words)
    scope, terms = ScopeWords(), [stem("cake"), stem("birthday")]

    def holding() -> set[int]:
        return {row for row, s in enumerate(words.stems_from(0)[1]) if s in terms}

    assert sorted(scope.rows(words, terms)) == sorted(holding()) and len(holding()) == 2  # cake, cakes
    terms.append(stem("router"))  # the scope gains a term the vocabulary knows ...
    words.learn(["birthday", "firmware", "routers"])  # ... and the vocabulary words old and new stems use
    _learned(words)
    rows = scope.rows(words, terms)
    assert sorted(rows) == sorted(holding()) and len(rows) == 5


def test_the_vocabulary_stops_growing_at_its_limit(runtime: Runtime) -> None:
    words = WordVectors(runtime.embedder.embed, runtime.embedder.dim, max_words=5)
    words.learn(sorted({w for text in MEMORIES for w in vocabulary_words(text)}))
    _learned(words)
    assert words.size == 5
    words.learn(["kitten", "puppy"])
    assert words.pending == 0 and words.size == 5


def test_a_search_finds_a_memory_through_a_word_it_does_not_contain(client: TestClient) -> None:
    """No word of the question is in the memory: its BM25 is 0 without expansion, positive with it."""
    user = "expansion-user"
    created = client.post("/v1/memories", json={"memories": [{"content": t, "user_id": user} for t in MEMORIES]})
    assert created.status_code in (200, 201), created.text
    target = created.json()["ids"][0]
    question = {"query": "Which desserts did she make?", "user_id": user, "k": 3}
    assert client.post("/v1/search", json=question).status_code == 200  # builds the scope's index: words queued
    deadline = time.monotonic() + 60
    while (stats := client.get("/v1/stats", params={"user_id": user}).json())["pending_words"]:
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    found = {r["id"]: r for r in client.post("/v1/search", json=question).json()["results"]}
    assert target in found
    assert found[target]["scores"]["lexical"] > 0
