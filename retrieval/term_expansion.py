"""Query expansion through word vectors, so a question's words reach memories that say it otherwise.

BM25 scores only the words a memory shares with the question: "What recipes has Joanna made?" never
meets "I celebrated by making this delicious treat" or an image caption about a cake. Each word the indexed
memories use is embedded once per process with the service's own model; a query's words are matched
to that vocabulary by cosine, and the closest words the scope holds join the query's BM25 terms at
a fraction of a query word's weight (`weight` x cosine). The dense view already compares whole
texts; this lets the lexical views, the context window above all, follow related words too.

Memories' words are learned off the request path, in small batches through the shared embedder, so
a query waits behind at most one batch of words; until a word is learned it is simply not offered
as an expansion. A query's words are expanded from only if some memory of the process uses them, so
a search never asks the model for more than its own vector. On LoCoMo dev, embedding a query's
other words in the search's time gained 0.006 recall@5 for ~2 ms more a search, and learning them
in the background for later queries gained nothing there (every question is new) and raised the
eval's p95 from 48 to 55 ms (docs/retrieval.md). The vocabulary is shared by every scope of the
process (words recur across users) and stops growing at `max_words`; expansions are always
filtered to the terms the searched scope holds.
"""

import logging
import threading
from collections import deque
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass

import numpy as np

from retrieval.tokens import STOP_WORDS, WORD_PATTERN, stem

log = logging.getLogger(__name__)

LEARN_BATCH = 32  # words embedded per model call: a query queued behind one waits a few ms
CANDIDATES_PER_WORD = 4  # nearest words looked at per expansion wanted, before the scope's filter


def vocabulary_words(text: str) -> set[str]:
    """The words of a text worth expanding from or to: lowercase, three letters or more, not a stop
    word and not a number."""
    return {w for w in WORD_PATTERN.findall(text.lower()) if len(w) > 2 and w not in STOP_WORDS and not w.isdigit()}


@dataclass(frozen=True)
class ExpansionParams:
    weight: float = 0.3  # of a query word's BM25, times the cosine; 0 turns expansion off
    min_cosine: float = 0.5
    per_word: int = 8
    max_terms: int = 16


@dataclass(frozen=True)
class QueryWords:
    """A query's words that the vocabulary knows, with their vectors, and the stems of all its words."""

    words: list[str]
    vectors: np.ndarray
    own: frozenset[str]  # never offered as expansions: BM25 scores them already


class WordVectors:
    """The process's vocabulary: each learned word's unit vector and stem, in one growing matrix."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray], dim: int, max_words: int) -> None:
        self._embed = embed
        self._max_words = max_words
        self._row: dict[str, int] = {}
        self._stems: list[str] = []
        self._matrix = np.zeros((1024, dim), dtype=np.float32)
        self._lock = threading.Lock()  # the rows; readers take a view of the filled part under it
        self._waiting: deque[str] = deque()
        self._queued: set[str] = set()
        self._unread: deque[list[str]] = deque()  # texts whose words are yet to be picked out
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def size(self) -> int:
        return len(self._stems)

    @property
    def pending(self) -> int:
        """Texts to read and words queued or being embedded (the eval waits for none before it asks)."""
        with self._wake:
            return len(self._queued) + sum(len(texts) for texts in self._unread)

    def read(self, texts: list[str]) -> None:
        """Learn the words of these texts, all of it in the background: picking the words out of a
        rebuilt scope's every memory would otherwise land on the search that rebuilt it."""
        if texts:
            with self._wake:
                self._unread.append(texts)
                self._start()

    def learn(self, words: Iterable[str]) -> None:
        """Queue the words not yet known for embedding in the background; returns at once."""
        with self._wake:
            room = self._max_words - len(self._stems) - len(self._queued)
            fresh = [w for w in words if w not in self._row and w not in self._queued][: max(room, 0)]
            if not fresh:
                return
            self._waiting.extend(fresh)
            self._queued.update(fresh)
            self._start()

    def _start(self) -> None:
        """Wake the learning thread, started on first use (the caller holds self._wake)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._learn_forever, name="loci-vocabulary", daemon=True)
            self._thread.start()
        self._wake.notify()

    def query_words(self, query_text: str) -> QueryWords:
        """The query's words the vocabulary knows, with their vectors (the others expand to nothing)."""
        words = sorted(vocabulary_words(query_text))
        with self._lock:
            rows = {w: self._row[w] for w in words if w in self._row}
            vectors = self._matrix[list(rows.values())].copy()
        return QueryWords(list(rows), vectors, frozenset(stem(w) for w in words))

    def expansions(self, query: QueryWords, held: Container[str], params: ExpansionParams) -> dict[str, float]:
        """Stems the scope holds (`held`) near the query's words, with their weights; the query's own
        stems are left out (BM25 scores them already)."""
        if not query.words or params.weight <= 0:
            return {}
        with self._lock:
            matrix, stems = self._matrix[: len(self._stems)], self._stems
        if not stems:
            return {}
        similarity = query.vectors @ matrix.T
        wanted = min(params.per_word * CANDIDATES_PER_WORD, len(stems))
        best: dict[str, float] = {}
        for row in similarity:
            nearest = np.argpartition(-row, wanted - 1)[:wanted]
            taken = 0
            for j in nearest[np.argsort(-row[nearest])]:
                cosine = float(row[j])
                if cosine < params.min_cosine or taken == params.per_word:
                    break
                term = stems[j]
                if term in query.own or term not in held:
                    continue
                taken += 1
                best[term] = max(best.get(term, 0.0), cosine)
        strongest = sorted(best.items(), key=lambda item: -item[1])[: params.max_terms]
        return {term: params.weight * cosine for term, cosine in strongest}

    def _learn_forever(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._unread:
                    self._wake.wait()
                texts = self._unread[0] if not self._waiting else None  # pending until its words are queued
            if texts is not None:
                words = {w for text in texts for w in vocabulary_words(text)}
                with self._wake:  # a re-entrant lock: learn() takes it too
                    self.learn(words)
                    self._unread.popleft()
                continue
            with self._wake:
                batch = [self._waiting.popleft() for _ in range(min(LEARN_BATCH, len(self._waiting)))]
            try:
                vectors = self._embed(batch)
            except Exception as exc:  # the embedder failing must not end learning for good
                log.warning("learning %d words failed: %s", len(batch), type(exc).__name__)
                vectors = None
            with self._wake:
                if vectors is not None:
                    self._add(batch, vectors)
                self._queued.difference_update(batch)

    def _add(self, words: list[str], vectors: np.ndarray) -> None:
        with self._lock:
            start = len(self._stems)
            if start + len(words) > len(self._matrix):
                grown = np.zeros((max(2 * len(self._matrix), start + len(words)), self._matrix.shape[1]), np.float32)
                grown[:start] = self._matrix[:start]
                self._matrix = grown
            self._matrix[start : start + len(words)] = vectors
            for offset, word in enumerate(words):
                self._row[word] = start + offset
            self._stems.extend(stem(w) for w in words)  # in place: readers index only rows they saw filled
