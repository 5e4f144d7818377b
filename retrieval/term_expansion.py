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
process (words recur across users) and stops growing at `max_words`; a query is compared only with
the words its scope holds (`ScopeWords`), so its cost follows the scope's vocabulary, not the
process's.
"""

import logging
import threading
from collections import deque
from collections.abc import Callable, Container, Iterable, Sequence
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
        self._rows_of_stem: dict[str, list[int]] = {}
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

    def expansions(
        self, query: QueryWords, rows: np.ndarray, held: Container[str], params: ExpansionParams
    ) -> dict[str, float]:
        """Stems near the query's words among the vocabulary's `rows` (a scope's: ScopeWords) that the
        scope's snapshot holds (`held`), with their weights; the query's own stems are left out (BM25
        scores them already)."""
        if not query.words or params.weight <= 0 or not len(rows):
            return {}
        with self._lock:  # rows only ever index filled rows; a grown matrix is a new array
            matrix, stems = self._matrix, self._stems
        end = int(rows[-1]) + 1
        if end <= 2 * len(rows):  # most of the rows up to the last: multiplying them all reads less than a copy
            similarity = (query.vectors @ matrix[:end].T)[:, rows]
        else:
            similarity = query.vectors @ matrix[rows].T
        wanted = min(params.per_word * CANDIDATES_PER_WORD, len(rows))
        best: dict[str, float] = {}
        for row in similarity:
            nearest = np.argpartition(-row, wanted - 1)[:wanted]
            taken = 0
            for j in nearest[np.argsort(-row[nearest])]:
                cosine = float(row[j])
                if cosine < params.min_cosine or taken == params.per_word:
                    break
                term = stems[rows[j]]
                if term in query.own or term not in held:
                    continue
                taken += 1
                best[term] = max(best.get(term, 0.0), cosine)
        strongest = sorted(best.items(), key=lambda item: -item[1])[: params.max_terms]
        return {term: params.weight * cosine for term, cosine in strongest}

    def stems_from(self, start: int) -> tuple[int, list[str]]:
        """The vocabulary's size and the stems of its rows from `start` on."""
        with self._lock:
            return len(self._stems), self._stems[start:]

    def rows_of(self, stems: Iterable[str], below: int) -> list[int]:
        """The rows under `below` of words with these stems."""
        with self._lock:
            return [row for s in stems for row in self._rows_of_stem.get(s, ()) if row < below]

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
            stems = [stem(w) for w in words]
            for row, (word, word_stem) in enumerate(zip(words, stems, strict=True), start=start):
                self._row[word] = row
                self._rows_of_stem.setdefault(word_stem, []).append(row)
            self._stems.extend(stems)  # in place: readers index only rows they saw filled


class ScopeWords:
    """The vocabulary's rows whose stems one scope holds: all that a query of the scope is compared with.

    Comparing with the whole process vocabulary read every learned word's vector on each query, which
    is memory traffic: 16 ms a query at 100k words, for the few thousand a scope uses. The rows are
    kept up to date from both sides' appends (the scope's new terms, the vocabulary's new words), so
    neither a write nor a learned word costs a pass over the scope. A scope that loses terms (an edit,
    a delete) is rebuilt with a new ScopeWords; until then `held` filters what it no longer holds.
    """

    def __init__(self) -> None:
        self._rows = np.empty(0, dtype=np.int64)
        self._stems: set[str] = set()
        self._stems_seen = 0  # of the scope's terms
        self._words_seen = 0  # of the vocabulary's rows
        self._lock = threading.Lock()

    def rows(self, vocabulary: WordVectors, terms: Sequence[str]) -> np.ndarray:
        """The rows in ascending order. `terms`: the scope's stems in the order it first used them (only
        ever appended to)."""
        with self._lock:
            size, fresh = vocabulary.stems_from(self._words_seen)
            new_terms = list(terms[self._stems_seen :])
            if not fresh and not new_terms:
                return self._rows
            # New words of stems seen before, then every word (new or not) of the new stems: no row twice.
            added = [row for row, s in enumerate(fresh, start=self._words_seen) if s in self._stems]
            added += vocabulary.rows_of(new_terms, below=size)
            if added:  # kept in order (two sorted runs merge in one pass) for expansions' choice of reads
                self._rows = np.sort(
                    np.concatenate([self._rows, np.sort(np.asarray(added, dtype=np.int64))]), kind="stable"
                )
            self._stems.update(new_terms)
            self._stems_seen += len(new_terms)
            self._words_seen = size
            return self._rows
