"""The retrieval systems compared by the runners, behind one two-method interface.

Every system sees the same units (the turns) and answers with unit ids, so metrics never
depend on how a system stores or names things.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from eval.units import Unit

SYSTEM_NAMES = ("loci", "loci-raw", "bm25", "dense", "mem0")
"""loci consolidates each scope after ingest (facts, keys, summaries) as the service does on idle
sessions; loci-raw searches the stored turns alone."""


class SystemUnavailable(Exception):
    """The system cannot run in this environment; the run reports it as skipped with this reason."""


class RetrievalSystem(Protocol):
    def index(self, units: Sequence[Unit]) -> None:
        """Replace whatever the system holds with these units (one fresh memory scope)."""

    def search(self, query: str, k: int, asked_at: datetime | None = None) -> list[str]:
        """Ids of at most k units, best first; `asked_at` is when the question is asked, for the
        systems that read periods relative to it."""


@contextmanager
def open_system(name: str, url: str | None = None, api_key: str | None = None) -> Iterator[RetrievalSystem]:
    """Build system `name` for the duration of a run (the Loci one may start a local service)."""
    if name == "bm25":
        from eval.systems.bm25 import BM25System

        yield BM25System()
    elif name == "dense":
        from eval.systems.dense import DenseSystem

        yield DenseSystem()
    elif name == "mem0":
        from eval.systems.mem0_peer import open_mem0

        with open_mem0() as system:
            yield system
    elif name in ("loci", "loci-raw"):
        from eval.systems.loci import open_loci

        with open_loci(url, api_key, consolidate=name == "loci") as system:
            yield system
    else:
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEM_NAMES)}")
